import NIOCore
import VigilConfig
import VigilConnection
import VigilFraming

/// `--mode command`: answers each message with the seed protocol's reply (`CommandProtocol`),
/// as text, on the same connection.
final class CommandSink: MessageSink {
    func received(_ message: WebSocketMessage, from connection: SupervisedConnectionHandler) {
        guard let allocator = connection.channel?.allocator else { return }
        let reply = CommandProtocol.reply(to: message.data)
        var buffer = allocator.buffer(capacity: reply.count)
        buffer.writeBytes(reply)
        connection.send(WebSocketMessage(kind: .text, data: buffer))
    }
}

@available(*, unavailable)
extension CommandSink: Sendable {}

extension ServerMode {
    /// A fresh sink for one connection of this mode; `nil` in proxy mode, where each pair's
    /// relay is made when its upstream leg opens.
    func makeSink() -> (any MessageSink)? {
        switch self {
        case .echo: EchoSink()
        case .command: CommandSink()
        case .proxy: nil
        }
    }
}

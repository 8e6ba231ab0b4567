import NIOCore

/// Keeps the first bytes a connection sent before its handshake, so a request the HTTP decoder
/// cannot parse is logged with what actually arrived: `\x16\x03\x01…` is a TLS client on the
/// plain port, `SSH-2.0-…` a misdirected ssh. Sits in front of the HTTP decoder and passes every
/// byte on untouched; the upgrader removes it with the handshake guard.
final class RequestPreview: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    /// How many bytes are kept: enough to recognise a protocol, little enough for a log line.
    static let capacity = 32

    private var bytes: [UInt8] = []
    private var sentMore = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !sentMore {
            let received = unwrapInboundIn(data).readableBytesView
            let room = Self.capacity - bytes.count
            bytes += received.prefix(room)
            sentMore = received.count > room
        }
        context.fireChannelRead(data)
    }

    /// The kept bytes as text for a log line: printable ASCII as is, `\` and every other byte
    /// as `\xNN`, and `…` when the connection sent more than was kept.
    var printable: String {
        var text = ""
        for byte in bytes {
            if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16)
                text += "\\x" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return sentMore ? text + "…" : text
    }
}

@available(*, unavailable)
extension RequestPreview: Sendable {}

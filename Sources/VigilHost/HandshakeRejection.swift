import NIOHTTP1
import VigilRegistry

/// Why a WebSocket handshake is refused: the HTTP answer, the metric label and a message naming
/// the offending value (the response body and the log line).
public struct HandshakeRejection: Error, Sendable {
    public var status: HTTPResponseStatus
    /// The `reason` label of `vigil_handshakes_rejected_total`.
    public var reason: HandshakeRejectionReason
    /// The log line's text, and the body unless `body` is given.
    public var message: String
    public var extraHeaders: [(String, String)]
    /// A body of its own (a proxy passing on its upstream's refusal) and its content type.
    public var body: (bytes: [UInt8], contentType: String)?

    public init(
        status: HTTPResponseStatus, reason: HandshakeRejectionReason, message: String,
        extraHeaders: [(String, String)] = [],
        body: (bytes: [UInt8], contentType: String)? = nil
    ) {
        self.status = status
        self.reason = reason
        self.message = message
        self.extraHeaders = extraHeaders
        self.body = body
    }

    /// The answer the client gets.
    public var response: HTTPErrorResponse {
        guard let body else { return HTTPErrorResponse(status, message: message, headers: extraHeaders) }
        return HTTPErrorResponse(status, body: body.bytes, contentType: body.contentType, headers: extraHeaders)
    }
}

import NIOCore
import NIOWebSocket

/// A complete data message.
public struct WebSocketMessage: Sendable {
    public enum Kind: Sendable, Hashable {
        case text
        case binary
    }

    public var kind: Kind
    /// The unmasked payload. For text messages it is valid UTF-8.
    public var data: ByteBuffer

    public init(kind: Kind, data: ByteBuffer) {
        self.kind = kind
        self.data = data
    }
}

/// What one received frame amounts to.
public enum WebSocketInbound: Sendable {
    /// A whole message (a single frame, or the final fragment of one).
    case message(WebSocketMessage)
    /// A non-final fragment was buffered; the message is not complete yet.
    case fragment
    case ping(ByteBuffer)
    case pong(ByteBuffer)
    case close(ClosePayload)
}

/// Turns frames from NIO's decoder into messages and control events, enforcing what NIO's
/// decoder leaves to its user: reserved bits, known opcodes, masking by role, fragment ordering,
/// the message size limit, UTF-8 of text messages and close reasons, and close codes.
///
/// A plain value owned by one channel handler. A thrown error leaves no half-assembled state
/// behind that could confuse control frames, so after a violation the owner can keep feeding it
/// until the peer's close reply arrives (further data frames may be refused again; ignore them).
public struct WebSocketMessageAssembler: Sendable {
    private let role: WebSocketRole
    private let limits: FramingLimits
    /// The message being assembled from fragments, if any.
    private var partial: (kind: WebSocketMessage.Kind, data: ByteBuffer)?
    private var validator = UTF8Validator()
    /// Masked payloads are unmasked into this buffer, kept for the next frame. Once whoever got
    /// the last payload has let it go (an echo written, a pong read), it is rewritten in place,
    /// so a steady stream of small frames does not allocate a buffer each (NIO's `unmaskedData`
    /// copies every masked payload into a new one). Only payloads up to `spareLimit` bytes go
    /// through it, so what a connection keeps between messages stays small: pongs, heartbeats
    /// and short messages, not the occasional large one.
    private var spare: ByteBuffer?
    static let spareLimit = 256

    public init(role: WebSocketRole, limits: FramingLimits) {
        self.role = role
        self.limits = limits
    }

    /// Whether a fragmented message is partly received.
    public var isAssembling: Bool { partial != nil }

    public mutating func receive(_ frame: WebSocketFrame) throws(FramingError) -> WebSocketInbound {
        guard frame.reservedBits.isEmpty else {
            throw FramingError(.protocolError, "reserved bits set without a negotiated extension")
        }
        switch role {
        case .server where frame.maskKey == nil:
            throw FramingError(.protocolError, "unmasked client frame")
        case .client where frame.maskKey != nil:
            throw FramingError(.protocolError, "masked server frame")
        default:
            break
        }
        switch frame.opcode {
        case .ping:
            return .ping(payload(of: frame))
        case .pong:
            return .pong(payload(of: frame))
        case .connectionClose:
            return .close(try ClosePayload(parsing: payload(of: frame)))
        case .text:
            return try start(.text, frame)
        case .binary:
            return try start(.binary, frame)
        case .continuation:
            return try `continue`(frame)
        default:
            let raw = String(UInt8(webSocketOpcode: frame.opcode), radix: 16, uppercase: true)
            throw FramingError(.protocolError, "unknown opcode 0x\(raw)")
        }
    }

    private mutating func start(_ kind: WebSocketMessage.Kind, _ frame: WebSocketFrame) throws(FramingError)
        -> WebSocketInbound
    {
        guard partial == nil else {
            throw FramingError(.protocolError, "new data frame before the fragmented message finished")
        }
        try checkSize(frame.length)
        // A first fragment gets a buffer of its own: the fragments after it are appended to it.
        let data = frame.fin ? payload(of: frame) : frame.unmaskedData
        if kind == .text {
            validator = UTF8Validator()
            try validate(data, final: frame.fin)
        }
        if frame.fin {
            return .message(WebSocketMessage(kind: kind, data: data))
        }
        partial = (kind, data)
        return .fragment
    }

    private mutating func `continue`(_ frame: WebSocketFrame) throws(FramingError) -> WebSocketInbound {
        // Taking the partial message out leaves its buffer uniquely referenced: appending won't copy it.
        guard var current = partial.take() else {
            throw FramingError(.protocolError, "continuation frame without a message to continue")
        }
        try checkSize(current.data.readableBytes + frame.length)
        var data = payload(of: frame)
        if current.kind == .text {
            try validate(data, final: frame.fin)
        }
        current.data.writeBuffer(&data)
        if frame.fin {
            return .message(WebSocketMessage(kind: current.kind, data: current.data))
        }
        partial = current
        return .fragment
    }

    /// The frame's payload, unmasked; small masked ones into `spare`.
    private mutating func payload(of frame: WebSocketFrame) -> ByteBuffer {
        guard let key = frame.maskKey, frame.length <= Self.spareLimit else { return frame.unmaskedData }
        // Taken out, so that `clear` finds it uniquely referenced unless a consumer still holds it
        // (then it copies, and the consumer keeps the old bytes).
        var buffer = spare.take() ?? ByteBufferAllocator().buffer(capacity: max(frame.length, 64))
        buffer.clear()
        var masked = frame.data
        buffer.writeBuffer(&masked)
        buffer.webSocketUnmask(key)
        spare = buffer
        return buffer
    }

    private func checkSize(_ size: Int) throws(FramingError) {
        guard size <= limits.maxMessageSize else {
            throw FramingError(.messageTooBig, "message exceeds \(limits.maxMessageSize) bytes")
        }
    }

    private mutating func validate(_ data: ByteBuffer, final: Bool) throws(FramingError) {
        let valid = data.withUnsafeReadableBytes { validator.validate($0) }
        guard valid, !final || validator.isComplete else {
            throw FramingError(.invalidUTF8, "text message is not valid UTF-8")
        }
    }
}

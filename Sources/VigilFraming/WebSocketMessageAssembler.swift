import NIOCore
import NIOWebSocket

/// A complete data message.
public struct WebSocketMessage: Sendable {
    public enum Kind: Sendable, Hashable {
        case text
        case binary
    }

    public var kind: Kind
    /// The unmasked payload. For text messages it is valid UTF-8, unless `compressed`.
    public var data: ByteBuffer
    /// The payload is permessage-deflate data (the message's first frame had RSV1): a relay
    /// passes it on as it came; an endpoint inflates it first.
    public var compressed: Bool

    public init(kind: Kind, data: ByteBuffer, compressed: Bool = false) {
        self.kind = kind
        self.data = data
        self.compressed = compressed
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
/// With permessage-deflate agreed, RSV1 on a data message's first frame marks the message
/// compressed (RFC 7692 §6); anywhere else (a continuation, a control frame, a connection that
/// agreed no extension) it is a protocol error, as RSV2 and RSV3 always are. A compressed
/// message's size limit is checked on what arrives; its UTF-8 and inflated size are the
/// inflating end's to check (`MessageDeflate`).
///
/// A plain value owned by one channel handler. A thrown error leaves no half-assembled state
/// behind that could confuse control frames, so after a violation the owner can keep feeding it
/// until the peer's close reply arrives (further data frames may be refused again; ignore them).
public struct WebSocketMessageAssembler: Sendable {
    private let role: WebSocketRole
    private let limits: FramingLimits
    /// permessage-deflate was agreed: RSV1 may mark a message compressed.
    private let compressionAgreed: Bool
    /// The message being assembled from fragments, if any.
    private var partial: (kind: WebSocketMessage.Kind, data: ByteBuffer, compressed: Bool)?
    private var validator = UTF8Validator()
    /// Masked payloads are unmasked into this buffer, kept for the next frame. Once whoever got
    /// the last payload has let it go (an echo written, a pong read), it is rewritten in place,
    /// so a steady stream of small frames does not allocate a buffer each (NIO's `unmaskedData`
    /// copies every masked payload into a new one). Only payloads up to `spareLimit` bytes go
    /// through it, so what a connection keeps between messages stays small: pongs, heartbeats
    /// and short messages, not the occasional large one.
    private var spare: ByteBuffer?
    static let spareLimit = 256

    public init(role: WebSocketRole, limits: FramingLimits, compressionAgreed: Bool = false) {
        self.role = role
        self.limits = limits
        self.compressionAgreed = compressionAgreed
    }

    /// Whether a fragmented message is partly received.
    public var isAssembling: Bool { partial != nil }

    public mutating func receive(_ frame: WebSocketFrame) throws(FramingError) -> WebSocketInbound {
        if !frame.reservedBits.isEmpty {
            guard compressionAgreed else {
                throw FramingError(.protocolError, "reserved bits set without a negotiated extension")
            }
            guard frame.reservedBits == .rsv1, frame.opcode == .text || frame.opcode == .binary else {
                throw FramingError(
                    .protocolError,
                    frame.reservedBits == .rsv1
                        ? "RSV1 on a frame that does not start a message" : "RSV2 or RSV3 set (no extension uses them)")
            }
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
        let compressed = frame.rsv1
        // A first fragment gets a buffer of its own: the fragments after it are appended to it.
        let data = frame.fin ? payload(of: frame) : Self.unmasked(frame)
        if kind == .text && !compressed {
            validator = UTF8Validator()
            try validate(data, final: frame.fin)
        }
        if frame.fin {
            return .message(WebSocketMessage(kind: kind, data: data, compressed: compressed))
        }
        partial = (kind, data, compressed)
        return .fragment
    }

    private mutating func `continue`(_ frame: WebSocketFrame) throws(FramingError) -> WebSocketInbound {
        // Taking the partial message out leaves its buffer uniquely referenced: appending won't copy it.
        guard var current = partial.take() else {
            throw FramingError(.protocolError, "continuation frame without a message to continue")
        }
        try checkSize(current.data.readableBytes + frame.length)
        var data = payload(of: frame)
        if current.kind == .text && !current.compressed {
            try validate(data, final: frame.fin)
        }
        current.data.writeBuffer(&data)
        if frame.fin {
            return .message(WebSocketMessage(kind: current.kind, data: current.data, compressed: current.compressed))
        }
        partial = current
        return .fragment
    }

    /// The frame's payload, unmasked; small masked ones into `spare`.
    private mutating func payload(of frame: WebSocketFrame) -> ByteBuffer {
        guard let key = frame.maskKey, frame.length <= Self.spareLimit else { return Self.unmasked(frame) }
        // Taken out, so that `clear` finds it uniquely referenced unless a consumer still holds it
        // (then it copies, and the consumer keeps the old bytes).
        var buffer = spare.take() ?? ByteBufferAllocator().buffer(capacity: max(frame.length, 64))
        buffer.clear()
        var masked = frame.data
        buffer.writeBuffer(&masked)
        buffer.applyWebSocketMask(key)
        spare = buffer
        return buffer
    }

    /// The frame's payload unmasked in a buffer of its own (the received bytes are shared with
    /// the read buffer: the write copies them), or as it came when it is not masked.
    private static func unmasked(_ frame: WebSocketFrame) -> ByteBuffer {
        guard let key = frame.maskKey else { return frame.data }
        var data = frame.data
        data.applyWebSocketMask(key)
        return data
    }

    private func checkSize(_ size: Int) throws(FramingError) {
        guard size <= limits.maxMessageSize else {
            throw FramingError(.messageTooBig, "message exceeds \(limits.maxMessageSize) bytes")
        }
    }

    /// An inflated text message's UTF-8, checked whole.
    public static func validateText(_ data: ByteBuffer) throws(FramingError) {
        var validator = UTF8Validator()
        let valid = data.withUnsafeReadableBytes { validator.validate($0) }
        guard valid, validator.isComplete else {
            throw FramingError(.invalidUTF8, "text message is not valid UTF-8")
        }
    }

    private mutating func validate(_ data: ByteBuffer, final: Bool) throws(FramingError) {
        let valid = data.withUnsafeReadableBytes { validator.validate($0) }
        guard valid, !final || validator.isComplete else {
            throw FramingError(.invalidUTF8, "text message is not valid UTF-8")
        }
    }
}

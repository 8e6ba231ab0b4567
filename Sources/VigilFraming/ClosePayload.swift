import NIOCore

/// The body of a close frame: an optional status code and a UTF-8 reason (RFC 6455 §5.5.1).
public struct ClosePayload: Sendable, Hashable {
    /// `nil` when the frame carried no payload at all (reported as 1005).
    public var code: UInt16?
    public var reason: String

    public init(code: UInt16?, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    /// Parses and validates a received close payload (already unmasked).
    public init(parsing payload: ByteBuffer) throws(FramingError) {
        var payload = payload
        guard payload.readableBytes > 0 else {
            self.init(code: nil)
            return
        }
        guard let code = payload.readInteger(as: UInt16.self) else {
            throw FramingError(.protocolError, "close frame with a 1-byte payload", inCloseFrame: true)
        }
        guard CloseCode.isValidOnWire(code) else {
            throw FramingError(.protocolError, "invalid close code \(code)", inCloseFrame: true)
        }
        var validator = UTF8Validator()
        let valid = payload.withUnsafeReadableBytes { validator.validate($0) } && validator.isComplete
        guard valid else {
            throw FramingError(.invalidUTF8, "close reason is not valid UTF-8", inCloseFrame: true)
        }
        self.init(code: code, reason: payload.readString(length: payload.readableBytes) ?? "")
    }

    /// The largest reason that fits a control frame (125 bytes minus the 2-byte code).
    public static let maxReasonBytes = 123

    /// Encodes the payload for sending; the reason is cut to fit at a scalar boundary.
    public func encode(allocator: ByteBufferAllocator) -> ByteBuffer {
        guard let code else { return allocator.buffer(capacity: 0) }
        let reasonBytes = Self.truncated(reason)
        var buffer = allocator.buffer(capacity: 2 + reasonBytes.count)
        buffer.writeInteger(code)
        buffer.writeBytes(reasonBytes)
        return buffer
    }

    /// The reason's UTF-8, cut to `maxReasonBytes` without splitting a scalar.
    static func truncated(_ reason: String) -> ArraySlice<UInt8> {
        let bytes = Array(reason.utf8)
        guard bytes.count > maxReasonBytes else { return bytes[...] }
        var end = maxReasonBytes
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return bytes[..<end]
    }
}

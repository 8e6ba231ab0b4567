import VigilFraming
import VigilSupervisor

extension ProtocolViolation {
    /// What the supervisor is told when the framing core refuses something the remote end sent:
    /// the one mapping from framing errors to close causes, used by every supervised connection
    /// and by the fuzz targets.
    public init(_ error: FramingError) {
        let cause: CloseCause =
            switch error.kind {
            case .protocolError: .protocolError
            case .invalidUTF8: .invalidUTF8
            case .messageTooBig: .messageTooBig
            }
        self.init(cause: cause, detail: error.detail, inCloseFrame: error.inCloseFrame)
    }
}

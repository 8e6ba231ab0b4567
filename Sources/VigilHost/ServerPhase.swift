/// Whether vigild is serving, for `/readyz`, `/health` and `/status`.
public enum ServerPhase: UInt8, Sendable {
    case starting, ready, draining

    public var name: String {
        switch self {
        case .starting: "starting"
        case .ready: "ready"
        case .draining: "draining"
        }
    }
}

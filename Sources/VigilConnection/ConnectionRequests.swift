import VigilSupervisor

/// Fired (as a user inbound event) into a supervised connection's pipeline to start a graceful
/// close: vigild's shutdown sends `CloseRequest(.shutdown)` to every connection. A connection
/// not yet upgraded is simply dropped by whoever guards its handshake.
public struct CloseRequest: Sendable, Hashable {
    public var close: LocalClose

    public init(_ close: LocalClose) {
        self.close = close
    }
}

/// Fired into every supervised connection when the rules change (a reload).
public struct PolicyUpdate: Sendable, Hashable {
    public var policy: SupervisionPolicy

    public init(_ policy: SupervisionPolicy) {
        self.policy = policy
    }
}

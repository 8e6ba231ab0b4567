import VigilSupervisor

/// Fired into every WebSocket channel's pipeline when vigild begins shutting down.
struct ShutdownRequested: Sendable {}

/// Fired into every upgraded channel when the timing rules change (a reload).
struct PolicyChanged: Sendable {
    var policy: SupervisionPolicy
}

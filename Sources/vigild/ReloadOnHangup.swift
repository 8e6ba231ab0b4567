import Logging
import ServiceLifecycle
import UnixSignals
import VigilConfig
import VigilServer

/// Reloads the configuration on every SIGHUP (`systemctl reload` sends one via ExecReload=).
struct ReloadOnHangup: Service, CustomStringConvertible {
    let server: VigilServer
    let signals: UnixSignalsSequence
    let load: @Sendable () throws -> ResolvedSettings

    /// ServiceLifecycle's name for it (see `VigilServer.description`).
    var description: String { "ReloadOnHangup" }

    func run() async {
        for await _ in signals.cancelOnGracefulShutdown() {
            server.reload(load)
        }
    }
}

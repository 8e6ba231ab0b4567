import Logging
import ServiceLifecycle
import UnixSignals
import VigilConfig
import VigilServer

/// Reloads the configuration on every SIGHUP (`systemctl reload` sends one via ExecReload=).
struct ReloadOnHangup: Service {
    let server: VigilServer
    let signals: UnixSignalsSequence
    let load: @Sendable () throws -> ResolvedSettings

    func run() async {
        for await _ in signals.cancelOnGracefulShutdown() {
            server.reload(load)
        }
    }
}

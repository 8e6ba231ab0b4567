import NIOPosix

/// Where the name a client asked for (SNI) lands during its TLS handshake. swift-nio-ssl hands
/// that name only to the context's callback, which is shared by every connection and told
/// nothing of which connection's hello it is reading; it runs synchronously inside the TLS
/// handler's read, on the connection's event loop. So `TLSFrontGuard` makes its connection's
/// witness the thread's current one around each read it passes to the TLS handler, and the
/// callback writes into whichever is current.
final class ServerNameWitness: @unchecked Sendable {
    // @unchecked: only ever touched on its connection's event loop thread (the front guard
    // sets and reads it there, and the callback runs there, inside the guard's read).
    var serverName: String?

    private static let slot = ThreadSpecificVariable<ServerNameWitness>()

    /// The witness of the connection whose bytes this thread is passing to its TLS handler.
    static var current: ServerNameWitness? {
        slot.currentValue
    }

    /// Runs `body` with this witness current on this thread.
    func whileCurrent(_ body: () -> Void) {
        let previous = Self.slot.currentValue
        Self.slot.currentValue = self
        defer { Self.slot.currentValue = previous }
        body()
    }
}

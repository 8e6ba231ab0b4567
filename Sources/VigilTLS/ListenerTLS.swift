import NIOSSL
import VigilConfig
import VigilText

#if canImport(Glibc)
    import Glibc
#endif

/// The WebSocket listener's TLS as loaded from the settings: one `NIOSSLContext` every new
/// connection's handshake uses, with the default certificate and, chosen by the name a client
/// asks for (SNI), those of `tls_certificates`. Immutable: a reload loads a new one from the
/// files and new handshakes take it, while established connections keep what they agreed.
public final class ListenerTLS: Sendable {
    public let context: NIOSSLContext
    /// What was loaded, for the log: the default first.
    public let certificates: [Loaded]

    /// One certificate as loaded, with what the log says of it.
    public struct Loaded: Sendable {
        /// The server names it is chosen for; empty for the default.
        public let serverNames: [String]
        public let certFile: String
        public let keyFile: String
        /// The names the certificate itself is for (subjectAltName).
        public let certifiedNames: String
        /// When the certificate expires, seconds since the epoch.
        public let notValidAfter: Int
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey

        func matches(_ name: String) -> Bool {
            TLSCertificateEntry(serverNames: serverNames, certFile: certFile, keyFile: keyFile).matches(name)
        }

        /// The same certificate, chosen for `names`.
        func named(_ names: [String]) -> Loaded {
            Loaded(
                serverNames: names, certFile: certFile, keyFile: keyFile, certifiedNames: certifiedNames,
                notValidAfter: notValidAfter, chain: chain, key: key)
        }
    }

    /// A file that cannot be served, worded for the operator: the path and the reason.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The listener's TLS for `settings`; `nil` when it speaks plain TCP. Throws for the first
    /// file that cannot be served.
    public static func load(_ settings: VigilSettings, now: time_t = time(nil)) throws(LoadError) -> ListenerTLS? {
        try load(settings, keeping: nil, now: now).tls
    }

    /// A reload's: every file read again, and a certificate that cannot be served now (a
    /// failed renewal, a key copied before its certificate) keeps what `running` serves from
    /// the same files, its problem returned in `kept`, so that one bad file holds back neither
    /// the other host names' renewals nor the rest of the reload. A new file that cannot be
    /// served, with nothing running from it, throws.
    public static func load(_ settings: VigilSettings, keeping running: ListenerTLS?, now: time_t = time(nil))
        throws(LoadError) -> (tls: ListenerTLS?, kept: [LoadError])
    {
        guard settings.tls else { return (nil, []) }
        var wanted: [(certFile: String, keyFile: String, serverNames: [String])] = []
        if let certFile = settings.tlsCertFile, let keyFile = settings.tlsKeyFile {
            wanted.append((certFile, keyFile, []))
        }
        wanted += settings.tlsCertificates.map { ($0.certFile, $0.keyFile, $0.serverNames) }
        var certificates: [Loaded] = []
        var kept: [LoadError] = []
        for (certFile, keyFile, serverNames) in wanted {
            do {
                certificates.append(try load(certFile: certFile, keyFile: keyFile, serverNames: serverNames, now: now))
            } catch {
                guard
                    let previous = running?.certificates.first(where: {
                        $0.certFile == certFile && $0.keyFile == keyFile
                    })
                else { throw error }
                kept.append(error)
                certificates.append(previous.named(serverNames))
            }
        }
        let fallback = certificates[0]
        let named = certificates.filter { !$0.serverNames.isEmpty }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: fallback.chain.map { .certificate($0) }, privateKey: .privateKey(fallback.key))
        configuration.minimumTLSVersion = settings.tlsMinVersion == .tls13 ? .tlsv13 : .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        configuration.cipherSuites = Self.cipherSuites
        // Called once per handshake, on the connection's event loop, when the client's hello is
        // in: it records the name asked for and picks the certificate, an exact name before a
        // wildcard (as nginx does), else the default.
        configuration.sslContextCallback = { values, promise in
            ServerNameWitness.current?.serverName = values.serverHostname
            guard let name = values.serverHostname.map(ServerNamePattern.normalised),
                let chosen = named.first(where: { $0.serverNames.contains(name) })
                    ?? named.first(where: { $0.matches(name) }),
                chosen.certFile != fallback.certFile || chosen.keyFile != fallback.keyFile
            else {
                promise.succeed(.noChanges)
                return
            }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = chosen.chain.map { .certificate($0) }
            override.privateKey = .privateKey(chosen.key)
            promise.succeed(override)
        }
        do {
            return (
                ListenerTLS(context: try NIOSSLContext(configuration: configuration), certificates: certificates), kept
            )
        } catch {
            throw LoadError(description: "cannot set up TLS with \(fallback.certFile): \(error)")
        }
    }

    /// TLS 1.2's suites: forward-secret AEADs only (Mozilla's "intermediate" profile without
    /// DHE, which BoringSSL does not do). swift-nio-ssl's defaults also allow RSA key exchange
    /// and CBC suites, which an edge should not. TLS 1.3's suites are all AEADs and fixed.
    static let cipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    private init(context: NIOSSLContext, certificates: [Loaded]) {
        self.context = context
        self.certificates = certificates
    }

    /// Reads and checks one certificate chain and its key: both parse, the chain is not empty,
    /// the certificate is valid now, and the key is the certificate's.
    static func load(certFile: String, keyFile: String, serverNames: [String], now: time_t) throws(LoadError)
        -> Loaded
    {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(try bytes(of: certFile, what: "tls certificate"))
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError(
                description: "tls certificate \(certFile) holds no PEM certificate vigild can read: \(error)")
        }
        guard let leaf = chain.first else {
            throw LoadError(
                description: "tls certificate \(certFile) holds no certificate (-----BEGIN CERTIFICATE-----)")
        }
        let names = TLSNames.of(leaf)
        if now > leaf.notValidAfter {
            throw LoadError(
                description:
                    "the certificate in \(certFile) (for \(names)) expired at \(TLSNames.date(leaf.notValidAfter))")
        }
        if now < leaf.notValidBefore {
            throw LoadError(
                description:
                    "the certificate in \(certFile) (for \(names)) is not valid before \(TLSNames.date(leaf.notValidBefore))"
            )
        }
        let keyBytes = try bytes(of: keyFile, what: "tls key")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            let encrypted = String(decoding: keyBytes.prefix(4096), as: UTF8.self).contains("ENCRYPTED")
            throw LoadError(
                description: encrypted
                    ? "tls key \(keyFile) is encrypted; vigild cannot ask for a passphrase (decrypt it: openssl pkey -in … -out …)"
                    : "tls key \(keyFile) holds no PEM private key vigild can read")
        }
        do {
            // BoringSSL checks that a key belongs to the certificate already set.
            _ = try NIOSSLContext(
                configuration: .makeServerConfiguration(
                    certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)))
        } catch {
            throw LoadError(
                description: "the key in \(keyFile) does not match the certificate in \(certFile) (for \(names))")
        }
        return Loaded(
            serverNames: serverNames, certFile: certFile, keyFile: keyFile, certifiedNames: names,
            notValidAfter: Int(leaf.notValidAfter), chain: chain, key: key)
    }

    /// A PEM file's bytes; errors say which file and why (a missing credential, a permission).
    private static func bytes(of path: String, what: String) throws(LoadError) -> [UInt8] {
        do {
            return try TextFile.bytes(path: path, what: what)
        } catch {
            throw LoadError(description: error.message)
        }
    }
}

import NIOCore
import NIOSSL
import Testing
import VigilRegistry

@testable import VigilTLS

#if canImport(Glibc)
    import Glibc
#endif

@Suite("What a failed TLS handshake is counted as")
struct TLSRecordScannerTests {
    /// A ClientHello-sized handshake record, a ChangeCipherSpec, then a plaintext alert.
    static let records: [UInt8] =
        [0x16, 0x03, 0x01, 0x00, 0x06, 1, 2, 3, 4, 5, 6] + [0x14, 0x03, 0x03, 0x00, 0x01, 0x01]
        + [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 48]

    @Test("an alert in the clear is found whatever pieces the bytes arrive in")
    func pieces() {
        for size in 1...Self.records.count {
            var scanner = TLSRecordScanner()
            var start = 0
            while start < Self.records.count {
                scanner.scan(Self.records[start..<min(start + size, Self.records.count)])
                start += size
            }
            #expect(scanner.alert == 48, "pieces of \(size)")
        }
    }

    @Test("record bodies are skipped, not read: an alert-like byte pattern inside one is not an alert")
    func bodiesSkipped() {
        var scanner = TLSRecordScanner()
        scanner.scan([0x17, 0x03, 0x03, 0x00, 0x07, 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 48])
        #expect(scanner.alert == nil)
        scanner.scan([0x15, 0x03, 0x03, 0x00, 0x03, 0x02, 48, 0])  // not two bytes: an encrypted one
        #expect(scanner.alert == nil)
    }

    @Test("the client's alert is the reason; else BoringSSL's code; else what happened")
    func classify() {
        struct Text: Error, CustomStringConvertible { var description: String }
        let code = Text(
            description:
                "handshakeFailed(sslError([Error: error:10000066:SSL routines:OPENSSL_internal:BAD_PACKET_LENGTH at x.cc:1]))"
        )
        #expect(TLSHandshakeFailure.classify(code, clientAlert: 48).reason == .certificateRejected)
        #expect(TLSHandshakeFailure.classify(code, clientAlert: 48).detail == "the client sent alert unknown_ca")
        #expect(TLSHandshakeFailure.classify(code, clientAlert: 70).reason == .protocolVersion)
        #expect(TLSHandshakeFailure.classify(code).reason == .protocolError)
        #expect(TLSHandshakeFailure.classify(code).detail == "bad packet length")
        let version = Text(description: "…:OPENSSL_internal:UNSUPPORTED_PROTOCOL at y.cc:2")
        #expect(TLSHandshakeFailure.classify(version).reason == .protocolVersion)
        let cipher = Text(description: "…:OPENSSL_internal:NO_SHARED_CIPHER at y.cc:2")
        #expect(TLSHandshakeFailure.classify(cipher).reason == .noSharedCipher)
        let unknownCA = Text(description: "…:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA at y.cc:2")
        #expect(TLSHandshakeFailure.classify(unknownCA).reason == .certificateRejected)
        #expect(TLSHandshakeFailure.classify(NIOSSLError.uncleanShutdown).reason == .closed)
        #expect(
            TLSHandshakeFailure.classify(IOError(errnoCode: ECONNRESET, reason: "read(descriptor:pointer:size:)"))
                .reason == .closed)
        #expect(TLSHandshakeFailure.classify(Text(description: "[Error:  EOF during handshake]")).reason == .closed)
    }
}

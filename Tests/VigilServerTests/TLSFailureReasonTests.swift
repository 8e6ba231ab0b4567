import NIOSSL
import Testing

@testable import VigilClient

/// What a failed TLS handshake is reported as, from the server's own certificate. Real
/// certificates (made with `openssl ca` with fixed dates, so they stay expired and not yet
/// valid); the live handshakes are in the black-box suite (test_targets.py, test_proxy.py).
@Suite("TLS failure reasons")
struct TLSFailureReasonTests {
    /// What BoringSSL's error says for any chain problem.
    struct VerifyFailed: Error, CustomStringConvertible {
        var description =
            "handshakeFailed(NIOSSL.BoringSSLError.sslError([Error: 268435581 error:1000007d:SSL routines:"
            + "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at /build/handshake.cc:320]))"
    }

    /// Valid 2020-01-01 to 2021-01-01, for expired.example and 10.1.2.3.
    static let expired = try! NIOSSLCertificate(
        bytes: Array(
            """
            -----BEGIN CERTIFICATE-----
            MIIDFDCCAfygAwIBAgIBATANBgkqhkiG9w0BAQsFADAbMRkwFwYDVQQDDBB2aWdp
            bCBmaXh0dXJlIENBMB4XDTIwMDEwMTAwMDAwMFoXDTIxMDEwMTAwMDAwMFowGjEY
            MBYGA1UEAwwPZXhwaXJlZC5leGFtcGxlMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A
            MIIBCgKCAQEAlMcz2qenRGMHyKwpwoOpLc71NGK3d+vgeJebI8U+QnIEYysOh7XS
            aaSUMdb3SR/W9oH8A8/2FItULumIc3/b4MeyDM+dyP2ZFMIP1HGD0sa2LvY+W7y5
            3xRjBevii33zpxxN63RWvMZyj0zntClyUblR8cGSvMpCGYE0T7tWsHfOBv4dUE2q
            C86MsmpGpCQ72hKU8hIsHC6H+i4SdaUeYV11MfAi96/cpgDw19vE/ZJPCnQ1EzUi
            YCoVyxeaV1mCoLiAbU4BWopI9EL8I7y58n5DRyMBLxJFyNHM65f76l/7poVX4jTr
            zuMT22CHk43Yvck3GOPTlpoJL3IWf/P42wIDAQABo2QwYjAgBgNVHREEGTAXgg9l
            eHBpcmVkLmV4YW1wbGWHBAoBAgMwHQYDVR0OBBYEFNSHOj80u2pyp6+8b3KSGoji
            cQ9oMB8GA1UdIwQYMBaAFGht5nTD5KJVGrvxbXDph4YyO6AUMA0GCSqGSIb3DQEB
            CwUAA4IBAQBbfuV2gBgiHSfsKDE3LJe7wUehINkurtm961eYD06oKGt8p8Himndf
            iehR2NOJmVYnCruLycXYeVxKN8kTPQs1jP0yMb5McKBEmRARc/rYn4bUQbEiXZEE
            gaRfWcxcRJV9aFUhFSIFPJBTDWDqYPZtS7s0JugLsKrp1596QEnPSJYkK+d+1B8H
            ZJxVW4mQ07UQQmRKnPrLZzC3W7kvFxhZxcNutSef0vB5i2Hns6Zs5mWOCnfW+L2s
            PFUM+cmU0l+hkxmup5EmXNiWdcyPMYbtYsBRZyX5IikEMYx+MeHkfmwd98eFkzZK
            p3MuvYaHEd8tRkgRypEaKUCzUevf4KOr
            -----END CERTIFICATE-----
            """.utf8), format: .pem)

    /// Valid 2099-01-01 to 2100-01-01, for future.example.
    static let future = try! NIOSSLCertificate(
        bytes: Array(
            """
            -----BEGIN CERTIFICATE-----
            MIIDEDCCAfigAwIBAgIBAjANBgkqhkiG9w0BAQsFADAbMRkwFwYDVQQDDBB2aWdp
            bCBmaXh0dXJlIENBMCIYDzIwOTkwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBa
            MBkxFzAVBgNVBAMMDmZ1dHVyZS5leGFtcGxlMIIBIjANBgkqhkiG9w0BAQEFAAOC
            AQ8AMIIBCgKCAQEAwH6m979PmLR7tYdhz8sitr4HMlwCeDpldvXatviWhsh4zIdF
            jzcZc9iYYv2mQSEs8SynTR4TKvzvDa3z8FjaW+9QvJWPQcPQKP46dpZO4LqjCRT1
            XgxpKFurWSKaXYQsMLxymjdzYQ4Zj7rWN5mfLL/GRLdB1C00CdMCGag8EV//Kl+5
            ioGkGoy2/KARog51d+Ndb2ugIugnPH6r8ReEpsrjyG0YmbMMbCWHtUIH/qV2+4QD
            uR/x58FqzQS8nC40vSGcb9eOX2bPmbn/bZPRTwHdPE6RwlJAvFCz854DTDlQZxZC
            LR6UsoDN3LzelRmEcWvo6VrD0PXdpj4jNafYpwIDAQABo10wWzAZBgNVHREEEjAQ
            gg5mdXR1cmUuZXhhbXBsZTAdBgNVHQ4EFgQUwrP5w28NZBaZsv0oamebnKD24gow
            HwYDVR0jBBgwFoAUaG3mdMPkolUau/FtcOmHhjI7oBQwDQYJKoZIhvcNAQELBQAD
            ggEBADNf1xKICNQE7aVLyuOnjqKnV/DwRQjorbQw/50jqHx9TvGFqAWQIT+CT/qv
            q+ny29N31dy/XC/QL7173vAHwZ3OqcdqGBPOVe9zVBZjt2LLc9l6WSuBOvdWttyU
            tDYuZmAS+SgIabhlg+Swt3GJvlcJYe0CjWwNDtckot8xhYbRrZKu1Zunww0gIzvA
            3PXf7C7kjmNHcpaw1nP4ceEEe0BOPNSfhcOIb1dxMKDs8wFN9wY0VqGPoZMURv7c
            GBPMTV7fgkcBrnucntZLva43MZdXUbjE2y13MsmaJA9O5bJyEpQ1EW6a59ndsFlL
            FNJkj+LCW62L3qHvSU2u5740XhM=
            -----END CERTIFICATE-----
            """.utf8), format: .pem)

    @Test("a chain problem is told apart by the certificate's dates")
    func dates() {
        #expect(
            TLSFailureReason.describe(
                VerifyFailed(), leaf: Self.expired, host: "expired.example", trust: "the system's trust store")
                == "the certificate for expired.example, 10.1.2.3 expired at 2021-01-01 00:00:00 UTC")
        #expect(
            TLSFailureReason.describe(
                VerifyFailed(), leaf: Self.future, host: "future.example", trust: "the system's trust store")
                == "the certificate for future.example is not valid before 2099-01-01 00:00:00 UTC")
        #expect(
            TLSFailureReason.describe(
                VerifyFailed(), leaf: Self.expired, host: "expired.example", trust: "the system's trust store",
                now: Self.expired.notValidBefore + 86400)
                == "the certificate for expired.example, 10.1.2.3 is not signed by a CA trusted here (the system's trust store)"
        )
        #expect(
            TLSFailureReason.describe(VerifyFailed(), leaf: nil, host: "h", trust: "ca_file /x.pem")
                == "the server's certificate could not be verified against ca_file /x.pem")
    }

    @Test("other BoringSSL failures come down to their reason code, without a build path")
    func reasonCodes() {
        struct WrongVersion: Error, CustomStringConvertible {
            var description =
                "sslError([Error: 268435720 error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER at /build/tls_record.cc:231])"
        }
        #expect(
            TLSFailureReason.describe(WrongVersion(), leaf: nil, host: "h", trust: "t")
                == "wrong version number (is the server speaking TLS on this port?)")
    }
}

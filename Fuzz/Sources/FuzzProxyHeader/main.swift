import FuzzSupport
import VigilRealClient

/// Arbitrary bytes as the first bytes of a connection on a listener with `proxy_protocol`, and
/// as forwarded headers from a trusted hop. Byte 0: which versions are accepted (bit 0: v1,
/// bit 1: v2; neither: both) and where the bytes are cut into two reads (bits 2-7); the rest is
/// the connection's stream. Checks: no crash; a header never claims more bytes than arrived
/// nor more than `maxLength`; reading the same bytes in two pieces ends the same as in one
/// (what is `needMore` for a prefix is never `invalid` before it is complete); the parse of the
/// stream up to a header's length alone is that header; and the forwarded-chain parser, fed
/// the same bytes as header values, names only addresses it can print.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyHeader(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count >= 1 else { return 0 }
    let input = UnsafeBufferPointer(start: start, count: count)
    let stream = Array(input.dropFirst())
    let versions: Set<ProxyProtocolHeader.Version> =
        switch input[0] & 3 {
        case 1: [.v1]
        case 2: [.v2]
        default: [.v1, .v2]
        }
    let whole = ProxyProtocolHeader.parse(stream, accepting: versions)
    if case .header(let header) = whole {
        check(header.length <= stream.count, "a header of \(header.length) bytes from \(stream.count)")
        check(header.length <= ProxyProtocolHeader.maxLength, "a header longer than maxLength")
        check(
            ProxyProtocolHeader.parse(Array(stream.prefix(header.length)), accepting: versions) == whole,
            "the header alone parses differently")
    }
    let cut = Int(input[0] >> 2) % (stream.count + 1)
    let first = ProxyProtocolHeader.parse(Array(stream.prefix(cut)), accepting: versions)
    switch first {
    case .needMore:
        break  // the whole stream decides
    case .header, .invalid:
        check(first == whole, "a prefix decided \(first), the whole stream \(whole)")
    }
    let text = String(decoding: stream, as: UTF8.self)
    let chains = [ForwardedChain(forwarded: [text]), ForwardedChain(forwardedFor: [text], forwardedProto: [text])]
    for hop in chains.flatMap(\.hops) {
        if let address = hop.address {
            check(address.utf8.allSatisfy { $0 < 0x80 && $0 > 0x20 }, "an address that is not plain text: \(address)")
        }
    }
    return 0
}

runLibFuzzer(fuzzProxyHeader)

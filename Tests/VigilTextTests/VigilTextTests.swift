import Testing
import VigilText

@Suite("Text helpers: request targets, percent-encoding, printable values, durations")
struct VigilTextTests {
    @Test("query parameters split at & and the first =, values kept as sent")
    func parameters() {
        let parsed = RequestTarget.parameters("a=1&b&c=x=y&&é=ü").map { [String($0.name), String($0.value)] }
        #expect(parsed == [["a", "1"], ["b", ""], ["c", "x=y"], ["é", "ü"]])
    }

    @Test(
        "printable: control characters escaped, at most 80 scalars, marked when cut",
        arguments: [
            ("plain", "plain"),
            ("a\nb\u{1B}[31m", "a\\u{a}b\\u{1b}[31m"),
            (String(repeating: "x", count: 80), String(repeating: "x", count: 80)),
            (String(repeating: "x", count: 81), String(repeating: "x", count: 80) + "…"),
            (String(repeating: "é", count: 100), String(repeating: "é", count: 80) + "…"),
            (String(repeating: "x", count: 79) + "\u{7F}yz", String(repeating: "x", count: 79) + "\\u{7f}…"),
            ("", ""),
        ])
    func printable(input: String, expected: String) {
        #expect(Printable.escaped(input[...]) == expected)
    }

    @Test("percent-encoding: unreserved characters kept, every other byte escaped; decoding refuses malformed escapes")
    func percentEncoding() {
        #expect(PercentEncoding.encoded("a b/é~") == "a%20b%2F%C3%A9~")
        #expect(PercentEncoding.decoded("a%20b%2F%C3%A9~+c") == "a b/é~ c")
        for malformed in ["%", "%2", "%zz", "%C3"] {
            #expect(PercentEncoding.decoded(malformed[...]) == nil, "\(malformed)")
        }
    }

    @Test("request targets split at the first ?")
    func split() {
        #expect(RequestTarget.split("/ws?client=a?b") == ("/ws", "client=a?b"))
        #expect(RequestTarget.split("/ws") == ("/ws", ""))
    }

    @Test(
        "durations for people and for settings",
        arguments: [
            (Duration.milliseconds(850), "850ms", "850ms"), (.seconds(12), "12s", "12s"),
            (.seconds(192), "3m12s", "192s"),
            (.seconds(7500), "2h05m", "125m"), (.seconds(3 * 86_400 + 4 * 3600), "3d4h", "4560m"), (.zero, "0ms", "0"),
            (.microseconds(1500), "1ms", "1.5ms"),
        ])
    func durations(duration: Duration, human: String, setting: String) {
        #expect(DurationText.human(duration) == human)
        #expect(DurationText.setting(duration) == setting)
    }
}

import Logging
import Testing
import VigilServiceManager
import VigilSupervisor

@testable import VigilHost
@testable import VigilServer
@testable import VigilSystemd

@Suite("Journal field names")
struct JournalFieldNameTests {
    @Test(
        "metadata keys map to valid journal field names",
        arguments: [
            ("ws_close_kind", "WS_CLOSE_KIND"), ("message_id", "MESSAGE_ID"), ("http.status", "HTTP_STATUS"),
            ("_secret", "SECRET"), ("__x", "X"), ("2fa", "F_2FA"), ("", "F_"), ("é-key", "KEY"), ("a.é", "A__"),
            ("message", "META_MESSAGE"), ("priority", "META_PRIORITY"), ("code_line", "META_CODE_LINE"),
            ("Mixed Case", "MIXED_CASE"),
        ])
    func mapping(key: String, expected: String) {
        let name = JournalFieldName.from(metadataKey: key)
        #expect(name == expected)
        #expect(JournalFieldName.isValid(name), "\(name)")
    }

    @Test("names are cut to 64 characters")
    func length() {
        let name = JournalFieldName.from(metadataKey: String(repeating: "k", count: 100))
        #expect(name.count == 64 && JournalFieldName.isValid(name))
    }

    @Test("every generated name is valid, whatever the key")
    func anyKey() {
        let alphabet = Array("aZ_09.- é\u{0}")
        for _ in 0..<2000 {
            let key = String((0..<Int.random(in: 0...70)).map { _ in alphabet.randomElement()! })
            #expect(JournalFieldName.isValid(JournalFieldName.from(metadataKey: key)), "\(key.debugDescription)")
        }
    }
}

@Suite("Journal entries")
struct JournalEntryTests {
    @Test("a record becomes MESSAGE, PRIORITY, identifier, code location and mapped metadata")
    func fields() {
        let event = LogEvent(
            level: .warning, message: "connection 1 closed", metadata: nil, source: "VigilServer",
            file: "Sources/VigilHost/CloseLogging.swift", function: "log(_:to:)", line: 42)
        let fields = JournalLogHandler.fields(
            identifier: "vigild", event: event, metadata: ["ws_close_kind": "abnormal", "message_id": "abc"])
        let named = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        #expect(named["MESSAGE"] == "connection 1 closed")
        #expect(named["PRIORITY"] == "4")
        #expect(named["SYSLOG_IDENTIFIER"] == "vigild")
        #expect(named["CODE_FILE"] == "Sources/VigilHost/CloseLogging.swift")
        #expect(named["CODE_LINE"] == "42")
        #expect(named["CODE_FUNC"] == "log(_:to:)")
        #expect(named["WS_CLOSE_KIND"] == "abnormal")
        #expect(named["MESSAGE_ID"] == "abc")
        #expect(fields.count == named.count, "no field twice")
    }

    @Test("swift-log levels map to syslog priorities")
    func priorities() {
        let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
        #expect(levels.map(JournalLogHandler.priority) == [7, 7, 6, 5, 4, 3, 2])
    }

    @Test("close lines log at info, notice or warning by kind")
    func closeLevels() {
        #expect(CloseLogging.level(for: .normal) == .info && CloseLogging.level(for: .goingAway) == .info)
        #expect(CloseLogging.level(for: .eof) == .notice)
        #expect(CloseLogging.level(for: .abnormal) == .warning && CloseLogging.level(for: .error) == .warning)
    }
}

@Suite("Service manager notifications")
struct NotificationTests {
    @Test("messages in sd_notify's KEY=value format")
    func formatting() {
        #expect(
            ServiceNotification.ready(mainPID: 42, status: "serving 0 connections").text
                == "READY=1\nMAINPID=42\nSTATUS=serving 0 connections")
        #expect(ServiceNotification.status("a").text == "STATUS=a")
        #expect(
            ServiceNotification.stopping(status: "bye", needs: .milliseconds(8500)).text
                == "STOPPING=1\nEXTEND_TIMEOUT_USEC=8500000\nSTATUS=bye")
        #expect(
            ServiceNotification.reloading(monotonicMicroseconds: 123_456, status: "r").text
                == "RELOADING=1\nMONOTONIC_USEC=123456\nSTATUS=r")
        #expect(ServiceNotification.watchdog.text == "WATCHDOG=1")
    }

    @Test("a newline in a status cannot inject another assignment")
    func injection() {
        #expect(ServiceNotification.status("ok\nREADY=1").text == "STATUS=ok READY=1")
    }

    @Test("the status line counts connections and the last minute's closes by kind")
    func statusLine() {
        #expect(
            StatusLine.text(active: 1234, lastMinute: [.normal: 12, .abnormal: 3, .eof: 1, .error: 0])
                == "serving 1234 connections; last 60 s: 12 normal, 3 abnormal, 1 eof")
        #expect(StatusLine.text(active: 1, lastMinute: [:]) == "serving 1 connection; last 60 s: no closes")
    }
}

@Suite("Watchdog timing")
struct WatchdogGateTests {
    let gate = WatchdogGate(interval: .seconds(4))
    let t0 = MonotonicInstant(nanoseconds: 10_000_000_000)

    @Test("pings at half the interval; loops beat at a quarter; beats may be half an interval old")
    func cadence() {
        #expect(gate.pingPeriod == .seconds(2))
        #expect(gate.beatPeriod == .seconds(1))
        #expect(gate.maxBeatAge == .seconds(2))
    }

    @Test("pings while every loop beat recently")
    func fresh() {
        #expect(gate.shouldPing(beatAges: [.seconds(1), .milliseconds(1999), .seconds(2)]))
        #expect(!gate.shouldPing(beatAges: [.seconds(1), .milliseconds(2001)]))
    }

    @Test("withholds pings when one loop is stalled, and resumes when it beats again")
    func stalled() {
        var beats: [MonotonicInstant?] = [t0, t0]
        var now = t0
        var pings: [Bool] = []
        // Loop 1 keeps beating every second; loop 0 stalls from t0 on for 5 s.
        for second in 1...8 {
            now = t0 + .seconds(Int64(second))
            beats[1] = now
            if second >= 5 { beats[0] = now }
            pings.append(gate.shouldPing(beatAges: beats.map { $0.map { now - $0 } }))
        }
        #expect(pings == [true, true, false, false, true, true, true, true])
    }

    @Test("a loop that never beat, or no loops at all, means no ping")
    func never() {
        #expect(!gate.shouldPing(beatAges: [.zero, nil]))
        #expect(!gate.shouldPing(beatAges: []))
    }
}

@Suite("Socket activation")
struct ListenSocketTests {
    @Test("the ws and status sockets are picked by name, in any order")
    func select() throws {
        let sockets = try SystemdListenSockets.select([(3, "status"), (4, "ws")])
        #expect(sockets == InheritedSockets(webSocket: 4, status: 3))
    }

    @Test(
        "a missing, extra or misnamed socket is an error naming what was passed",
        arguments: [
            [(Int32(3), "ws")], [(3, "ws"), (4, "status"), (5, "extra")], [(3, "ws"), (4, "unknown")],
            [(3, "ws"), (4, "ws")],
        ])
    func wrong(passed: [(Int32, String)]) {
        #expect {
            try SystemdListenSockets.select(passed.map { (fd: $0.0, name: $0.1) })
        } throws: { error in
            let text = "\(error)"
            return text.contains("socket activation passed \(passed.count) socket(s)")
                && passed.allSatisfy { text.contains("\($0.1) (fd \($0.0))") }
                && text.contains("named ws and status")
        }
    }
}

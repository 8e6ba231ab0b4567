import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// A swift-log backend that writes each record as one journal entry: `MESSAGE`, `PRIORITY`
/// (syslog level from the swift-log level), `SYSLOG_IDENTIFIER`, `CODE_FILE`/`CODE_LINE`/
/// `CODE_FUNC`, and every metadata key as a field (see `JournalFieldName`). Entries are written
/// on the `JournalQueue`'s thread, never on the caller's (an event loop), so a journald that
/// stops draining cannot stall the daemon. An entry journald does not take (its socket is gone)
/// goes to the `fallback` handler instead, and the daemon keeps serving.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    private let identifier: String
    private let writer: JournalWriter
    private let queue: JournalQueue
    private var fallback: any LogHandler

    public init(
        identifier: String, writer: JournalWriter = JournalWriter(), queue: JournalQueue = .shared,
        fallback: any LogHandler
    ) {
        self.identifier = identifier
        self.writer = writer
        self.queue = queue
        self.fallback = fallback
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields = Self.fields(identifier: identifier, event: event, metadata: merged)
        var configured = self.fallback
        configured.metadata = metadata
        configured.logLevel = logLevel
        let fallback = configured
        let writer = self.writer
        let identifier = self.identifier
        queue.submit(
            { if !writer.send(fields) { fallback.log(event: event) } },
            reportDrops: { count in
                let note = LogEvent(
                    level: .warning,
                    message:
                        "\(count) log entries were dropped while the journal was not taking them (at most \(JournalQueue.shared.capacity) wait)",
                    metadata: ["dropped": "\(count)"], source: identifier, file: #fileID, function: #function,
                    line: #line)
                if !writer.send(Self.fields(identifier: identifier, event: note, metadata: [:])) {
                    fallback.log(event: note)
                }
            })
    }

    /// The journal entry for one record.
    public static func fields(identifier: String, event: LogEvent, metadata: Logger.Metadata) -> [(
        name: String, value: String
    )] {
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", "\(event.message)"),
            ("PRIORITY", "\(priority(event.level))"),
            ("SYSLOG_IDENTIFIER", identifier),
            ("CODE_FILE", event.file),
            ("CODE_LINE", "\(event.line)"),
            ("CODE_FUNC", event.function),
        ]
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            fields.append((JournalFieldName.from(metadataKey: key), "\(value)"))
        }
        return fields
    }

    /// swift-log level → syslog priority (sd-daemon(3)).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Whether stderr is connected to the journal: `JOURNAL_STREAM` names stderr's device and inode.
    public static func stderrIsJournal(environment: [String: String]) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}

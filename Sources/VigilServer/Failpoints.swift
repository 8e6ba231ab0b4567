import VigilHost
import VigilText

/// Faults a test can switch on in the real binary, for the paths no peer can reach from outside
/// (`VIGILD_FAILPOINTS=upgrade_pipeline`). With none set — always, outside tests — each check is
/// one lookup in an empty set at a point that is not on the message path.
public struct Failpoints: Sendable, Hashable {
    public static let environmentVariable = "VIGILD_FAILPOINTS"

    public enum Point: String, CaseIterable, Sendable {
        /// Setting up an upgraded connection's pipeline fails after the framing handlers are in,
        /// before the supervised connection is: the slot, the registry entry and (in proxy mode)
        /// the upstream leg must all be given back.
        case upgradePipeline = "upgrade_pipeline"
    }

    /// The error a triggered failpoint throws.
    public struct Triggered: Error, CustomStringConvertible {
        public let point: Point
        public var description: String { "failpoint \(point.rawValue) (\(Failpoints.environmentVariable))" }
    }

    public static let none = Failpoints(active: [])

    public let active: Set<Point>

    public init(active: Set<Point>) {
        self.active = active
    }

    /// Reads `VIGILD_FAILPOINTS` (names separated by commas); an unknown name is an error that
    /// names it and the known ones.
    public init(environment: [String: String]) throws {
        var active = Set<Point>()
        for name in (environment[Self.environmentVariable] ?? "").split(separator: ",") {
            let trimmed = String(name.filter { $0 != " " && $0 != "\t" })
            guard let point = Point(rawValue: trimmed) else {
                throw StartupError(
                    message:
                        "\(Self.environmentVariable): unknown failpoint \"\(Printable.escaped(trimmed[...]))\"; known: \(Point.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            active.insert(point)
        }
        self.active = active
    }

    /// Throws if `point` is switched on.
    func check(_ point: Point) throws {
        if active.contains(point) { throw Triggered(point: point) }
    }
}

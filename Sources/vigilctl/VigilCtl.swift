import ArgumentParser
import FoundationEssentials
import VigilConfig
import VigilText

#if canImport(Glibc)
    import Glibc
#endif

/// `vigilctl`: vigild's status API for people and scripts.
@main
struct VigilCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigilctl",
        abstract: "Ask a running vigild how its connections are, and how they ended.",
        discussion: """
            vigilctl finds vigild's status API in the same config file vigild reads (--config, else \
            VIGIL_CONFIG, else /etc/vigil/vigil.yaml), with the VIGIL_* overrides vigild.service reads \
            from /etc/vigil/vigild.env (without --config): its status_socket when it has one, else \
            status_listen with the token in status_token_file. --status overrides it. The options \
            every command takes (--status, --config, --token-file, -o, --no-headers) may come \
            before the command or after it.

            Exit status: 0 done; 1 vigild answered with an error; 2 a bad --status or configuration; \
            3 vigild could not be reached; 64 a command line vigilctl does not understand. `health`: 0 pass, 1 warn, 2 fail, 3 unknown (vigild \
            unreachable or refusing, or no configuration to find it). \
            `targets is-up NAME`: 0 up, 3 anything else (down, no such target, vigild unreachable).
            """,
        version: "vigilctl 0.1.0",
        subcommands: [Status.self, Connections.self, Closes.self, Targets.self, Routes.self, Health.self])

    static func main() async {
        await main(GlobalOptionOrder.reordered(Array(CommandLine.arguments.dropFirst())))
    }
}

/// What every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The status API: a Unix socket path, or http://HOST:PORT.", completion: .file())
    var status: String?
    @Option(
        name: .long, help: "vigild's config file, to find the status API in.",
        completion: .file(extensions: ["yaml", "yml", "json"]))
    var config: String?
    @Option(
        name: .long, help: "A file holding the bearer token (default: the config's status_token_file).",
        completion: .file())
    var tokenFile: String?
    @Option(name: [.short, .customLong("output")], help: "table, wide or json.") var output: OutputFormat = .table
    @Flag(name: .long, help: "Tables without their header line.") var noHeaders = false

    var palette: Palette { .forStandardOutput(environment: ProcessInfo.processInfo.environment) }

    /// The client for the endpoint the options and the config file name.
    func client() throws -> StatusClient {
        var environment = ProcessInfo.processInfo.environment
        if config == nil {
            // What vigild.service gives vigild (EnvironmentFile=); vigilctl's own VIGIL_* win.
            let file = try EnvironmentFile.read(path: EnvironmentFile.servicePath)
            environment.merge(file.filter { $0.key.hasPrefix("VIGIL_") }) { own, _ in own }
        }
        var token = try tokenFile.map { try Self.readToken($0) }
        if let status {
            return StatusClient(endpoint: try Self.endpoint(status), token: token)
        }
        let path = config ?? environment[SettingsLoader.configEnvironmentVariable] ?? "/etc/vigil/vigil.yaml"
        let file: ConfigFile?
        if config == nil && environment[SettingsLoader.configEnvironmentVariable] == nil && access(path, F_OK) != 0 {
            file = nil  // no config file: vigild's defaults
        } else {
            do {
                file = try ConfigFile.read(path: path, targets: false)  // no need for the targets' secrets
            } catch {
                throw Failure(message: "\(error); give the status API with --status", exitCode: 2)
            }
        }
        let settings: VigilSettings
        do {
            settings = try SettingsLoader.resolve(flags: [:], environment: environment, file: file).settings
        } catch {
            throw Failure(message: "\(error)", exitCode: 2)
        }
        if let socket = settings.statusSocket, access(socket, W_OK) == 0 {
            return StatusClient(endpoint: .unix(path: socket), token: nil)
        }
        if token == nil, let tokenPath = settings.statusTokenFile {
            token = try Self.readToken(tokenPath)
        }
        let host =
            ["0.0.0.0", "::", ""].contains(settings.statusListen.host) ? "127.0.0.1" : settings.statusListen.host
        return StatusClient(endpoint: .tcp(host: host, port: settings.statusListen.port), token: token)
    }

    static func endpoint(_ text: String) throws -> StatusEndpoint {
        if text.hasPrefix("/") { return .unix(path: text) }
        let rest = text.hasPrefix("http://") ? String(text.dropFirst("http://".count)) : text
        let authority = rest.split(separator: "/", maxSplits: 1).first.map(String.init) ?? rest
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]),
            (1...65535).contains(port)
        else {
            throw Failure(message: "--status \(text): expected a Unix socket path or http://HOST:PORT", exitCode: 2)
        }
        var host = String(authority[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .tcp(host: host, port: port)
    }

    static func readToken(_ path: String) throws -> String {
        do {
            return try TextFile.read(path: path, what: "token file", limit: 4096).trimmingWhitespace
        } catch {
            throw Failure(message: "\(error)", exitCode: 2)
        }
    }
}

/// A failure with the exit status it calls for and a message for stderr.
struct Failure: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32
    var description: String { message }
}

/// Runs `body`, printing a failure as `vigilctl: …` and exiting with its status, or with
/// `exitCode` for every failure when given.
func reporting(exitCode: Int32? = nil, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as Failure {
        FileHandleStandardError.write("vigilctl: \(failure.message)\n")
        throw ExitCode(exitCode ?? failure.exitCode)
    } catch let unreachable as UnreachableError {
        FileHandleStandardError.write("vigilctl: \(unreachable)\n")
        throw ExitCode(3)
    } catch {
        guard let exitCode, !(error is ExitCode) else { throw error }
        FileHandleStandardError.write("vigilctl: \(error)\n")
        throw ExitCode(exitCode)
    }
}

enum FileHandleStandardError {
    static func write(_ text: String) {
        writeAll(STDERR_FILENO, text)
    }
}

/// A line on standard output, written at once (unbuffered: `closes --follow` prints as records
/// arrive, and everything before must already be out).
func emit(_ text: String) {
    writeAll(STDOUT_FILENO, text + "\n")
}

private func writeAll(_ descriptor: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}

extension StatusClient {
    /// A JSON document from the API; an error status is a `Failure` with the API's message.
    func document(_ path: String) async throws -> JSONValue {
        let (status, body) = try await get(path)
        let document = try? JSONValue.parse(body)
        guard status == 200 || (path == "/health" && status == 503) else {
            let message = document?["error"].string ?? String(decoding: body.prefix(500), as: UTF8.self)
            throw Failure(message: "vigild answered \(status) for \(path): \(message)", exitCode: 1)
        }
        guard let document else {
            throw Failure(message: "vigild's answer to \(path) is not JSON", exitCode: 1)
        }
        return document
    }

    /// Every item of a paged list, following `next`.
    func pages(_ path: String, key: String) async throws -> (first: JSONValue, items: [JSONValue]) {
        var next: String? = path
        var items: [JSONValue] = []
        var first: JSONValue?
        while let current = next {
            let document = try await self.document(current)
            first = first ?? document
            items += document[key].array
            next = document["next"].string
        }
        return (first ?? .null, items)
    }
}

extension String {
    var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[start...end])
    }

    /// `a=b` split at the first `=`.
    var keyValue: (key: String, value: String)? {
        guard let equals = firstIndex(of: "=") else { return nil }
        return (String(self[..<equals]), String(self[index(after: equals)...]))
    }
}

extension OutputFormat: ExpressibleByArgument {}

/// A query string from the filters a command was given.
func query(_ pairs: [(String, String?)]) -> String {
    let given = pairs.compactMap { name, value in value.map { "\(name)=\(PercentEncoding.encoded($0))" } }
    return given.isEmpty ? "" : "?" + given.joined(separator: "&")
}

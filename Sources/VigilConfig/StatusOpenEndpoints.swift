/// The status API endpoints `status_token_file` never guards: the probes a load balancer or
/// orchestrator asks without credentials, and the status page itself (a static document; its
/// requests for data carry the token). Spelled once: the access check, `--help`, the start-up
/// error and the docs all say the same.
public enum StatusOpenEndpoints {
    public static let paths: [String] = ["/", "/livez", "/readyz"]

    /// `/, /livez and /readyz`
    public static var text: String { paths.dropLast().joined(separator: ", ") + " and " + paths.last! }
}

/// Lets the options every command takes come before the command too, as kubectl, systemctl and
/// docker accept them (`vigilctl --status URL status`): swift-argument-parser reads a
/// subcommand's options only after its name, so those given before it are moved to the end.
enum GlobalOptionOrder {
    /// Options that take a value (also written `--name=value`).
    static let valued: Set<String> = ["--status", "--config", "--token-file", "--output", "-o"]
    static let flags: Set<String> = ["--no-headers"]

    /// `arguments` (without the program name) with the leading global options moved behind the
    /// command (before a `--`, if there is one). Anything else is left as it is, so the parser
    /// still names what it does not understand.
    static func reordered(_ arguments: [String]) -> [String] {
        var moved: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if flags.contains(argument) {
                moved.append(argument)
                index += 1
            } else if valued.contains(name) && argument.contains("=") {
                moved.append(argument)
                index += 1
            } else if valued.contains(argument) && index + 1 < arguments.count {
                moved += [argument, arguments[index + 1]]
                index += 2
            } else {
                break
            }
        }
        guard !moved.isEmpty, index < arguments.count, !arguments[index].hasPrefix("-") else { return arguments }
        var rest = Array(arguments[index...])
        let end = rest.firstIndex(of: "--") ?? rest.endIndex
        rest.insert(contentsOf: moved, at: end)
        return rest
    }
}

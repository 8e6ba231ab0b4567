/// A start-up (or reload) failure worded for the operator.
public struct StartupError: Error, CustomStringConvertible {
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}

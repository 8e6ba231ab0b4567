#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's entry for programs that keep their own main (clang's -fsanitize=fuzzer runtime).
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// Hands the process to libFuzzer's driver with `target` as the input callback; its flags
/// (-max_total_time=N, corpus directories, …) come from the command line.
public func runLibFuzzer(_ target: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, target))
}

/// A fuzz target's assertion. Unlike `precondition`, it names what failed in an optimised build
/// too, so the crash report says which property an input broke.
public func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

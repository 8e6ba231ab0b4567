import NIOCore
import NIOEmbedded
import VigilConnection
import VigilSupervisor

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

/// Moves `loop` on to the timer wheel's next tick. A target that keeps one loop and wheel for
/// every input calls it first, so that an input runs the same whatever ran before it, and a
/// crash replays from its file alone: its deadlines round up to ticks from the same phase, and
/// what earlier inputs left in the wheel has no target any more (the wheel holds them weakly).
/// A tick, not a whole revolution: a wheel that wakes after a revolution walks all its slots.
public func startOnATick(_ loop: EmbeddedEventLoop) {
    let tick = UInt64(TimerWheel.tick.inNanoseconds)
    let now = loop.now.uptimeNanoseconds
    loop.advanceTime(to: .uptimeNanoseconds((now + tick - 1) / tick * tick))
}

/// A fuzz target's assertion. Unlike `precondition`, it names what failed in an optimised build
/// too, so the crash report says which property an input broke.
public func check(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #file,
    line: UInt = #line
) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

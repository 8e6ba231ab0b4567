// libFuzzer's driver runs the fuzz loop (flags: -max_total_time=N, corpus directories, …).
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzConnection($0, $1) })

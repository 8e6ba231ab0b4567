// libFuzzer runs the fuzz loop; see FuzzConnection.swift for what each input goes through.
import FuzzSupport

runLibFuzzer { fuzzConnection($0, $1) }

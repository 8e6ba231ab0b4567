// libFuzzer runs the fuzz loop; see FuzzRelay.swift for what each input goes through.
import FuzzSupport

runLibFuzzer { fuzzRelay($0, $1) }

// libFuzzer runs the fuzz loop; see FuzzFraming.swift for what each input goes through.
import FuzzSupport

runLibFuzzer { fuzzFraming($0, $1) }

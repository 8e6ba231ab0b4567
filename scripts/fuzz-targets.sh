# What scripts/fuzz.sh and scripts/fuzz-campaign.sh share: the targets, their binaries and
# flags, the regression replay and the report of a run. Sourced, not run.

FUZZ_TARGETS="framing connection relay proxy-header"
FUZZ_ROOT=$root/Fuzz
FUZZ_WORK=$root/.build-fuzz/work
FUZZ_ARTIFACTS=$root/.build-fuzz/artifacts
# The Swift runtime's backtracer would catch a crash before AddressSanitizer and libFuzzer
# report it (and trips ASan itself); they say what happened and write the input.
export SWIFT_BACKTRACE=enable=no
# While fuzzing, a heap error's report shows four frames of where the memory was allocated and
# freed instead of thirty: recording thirty on every malloc and free was an eighth of each run.
# The debug replay of a crashing input (make fuzz, after adding it to Fuzz/regressions) shows
# them all.
FUZZ_ASAN_OPTIONS=malloc_context_size=4

# fuzz_binary CONFIGURATION TARGET: CONFIGURATION is `release` or `debug` (AddressSanitizer,
# optimised or with full reports) or `fast` (optimised, libFuzzer alone: Swift's own checks of
# bounds, overflow and unwrapping stay on, and AddressSanitizer's cost, 60 % of each input, goes).
fuzz_binary() {
    local directory=$root/.build-fuzz/$1
    if [ "$1" = fast ]; then directory=$root/.build-fuzz-fast/release; fi
    case $2 in
        framing) echo "$directory/FuzzFraming" ;;
        connection) echo "$directory/FuzzConnection" ;;
        relay) echo "$directory/FuzzRelay" ;;
        proxy-header) echo "$directory/FuzzProxyHeader" ;;
    esac
}

# fuzz_flags TARGET: input lengths long enough for 16- and 64-bit lengths and fragmented
# messages (framing and relay up to 64 KiB; a connection up to its max_message, 16 KiB, and
# some frames around it), the WebSocket and HTTP dictionary, and for the connection target no
# per-input leak check: its server outlives every input by design (close history, counters,
# the timer wheel), so an input's allocations and frees need not balance, and libFuzzer took
# each imbalance for a possible leak and scanned the whole heap (six inputs in seven went to
# that). LeakSanitizer still checks the whole process when the run ends.
# The framing and relay targets keep their event loop and timer wheel from input to input too,
# so the same holds for them.
fuzz_flags() {
    local flags="-dict=$FUZZ_ROOT/websocket.dict -detect_leaks=0"
    case $1 in
        framing | relay) flags="$flags -max_len=65536" ;;
        connection) flags="$flags -max_len=20000" ;;
        proxy-header) flags="-dict=$FUZZ_ROOT/proxy-header.dict -max_len=4200" ;;
    esac
    echo "$flags"
}

# replay_under_asan TARGET DIRECTORY: every input in DIRECTORY once through the debug build
# (AddressSanitizer, full reports, the per-input leak check on), so that whatever a fast run
# kept (each input that reached something new) has been checked for memory errors as well.
replay_under_asan() {
    local target=$1 directory=$2 log=$FUZZ_WORK/$1-asan-replay.log count
    count=$(find "$directory" -type f | wc -l)
    # shellcheck disable=SC2046
    if ! ASAN_OPTIONS= "$(fuzz_binary debug "$target")" $(fuzz_flags "$target") -detect_leaks=1 -runs=0 \
            -artifact_prefix="$FUZZ_ARTIFACTS/$target-asan-" "$directory" > "$log" 2>&1; then
        tail -60 "$log"
        echo "[fuzz] $target: an input FAILED under AddressSanitizer; it is in $FUZZ_ARTIFACTS"
        return 1
    fi
    echo "[fuzz] $target: all $count inputs of the run replayed under AddressSanitizer (debug build): clean"
}

# replay_regressions TARGET: every input that once crashed TARGET, through its debug build.
replay_regressions() {
    local target=$1 inputs
    inputs=$(find "$FUZZ_ROOT/regressions/$target" -type f ! -name '.keep' 2> /dev/null | sort)
    [ -n "$inputs" ] || return 0
    echo "[fuzz] $target: replaying $(echo "$inputs" | wc -l) regression input(s) (debug build)"
    # shellcheck disable=SC2086
    if ! ASAN_OPTIONS= "$(fuzz_binary debug "$target")" -runs=1 $inputs > "$FUZZ_WORK/$target-regressions.log" 2>&1; then
        tail -60 "$FUZZ_WORK/$target-regressions.log"
        echo "[fuzz] $target: a regression input fails again"
        return 1
    fi
}

# report_run TARGET LOG: inputs run, inputs a second, and coverage of vigil's own code at the
# start and the end (libFuzzer's cov: edges reached; ft: features, edges with hit counts).
report_run() {
    local target=$1 log=$2 start end runs rate
    start=$(grep -a -m1 'INITED' "$log" | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+).*/\1/')
    end=$(grep -a 'DONE' "$log" | tail -1 | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+).*/\1/')
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    echo "[fuzz] $target: ${runs:-?} inputs, ${rate:-?} inputs a second; at the start $start, at the end $end"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-$FUZZ_ASAN_OPTIONS}
mkdir -p "$FUZZ_WORK" "$FUZZ_ARTIFACTS"

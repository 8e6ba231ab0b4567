#!/usr/bin/env bash
# Replays every regression input through the debug build of its target (full AddressSanitizer
# reports), then runs each libFuzzer target, optimised and without AddressSanitizer, for SECONDS
# seconds from the hand-made seeds and the committed corpus, prints what it did (inputs, inputs a
# second, coverage), and replays every input the run kept under AddressSanitizer.
# Usage: scripts/fuzz.sh SECONDS    (the targets are built by `make fuzz`)
set -euo pipefail
seconds=${1:?seconds}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/fuzz-targets.sh
source "$root/scripts/fuzz-targets.sh"
status=0
for target in $FUZZ_TARGETS; do
    replay_regressions "$target" || status=1
    work=$FUZZ_WORK/$target
    rm -rf "$work" && mkdir -p "$work" "$FUZZ_ARTIFACTS"
    # Fuzz on a copy, so new inputs do not land in the repository (`make fuzz-campaign` merges).
    cp "$FUZZ_ROOT/seeds/$target/"* "$work/"
    if compgen -G "$FUZZ_ROOT/corpus/$target/*" > /dev/null; then cp "$FUZZ_ROOT/corpus/$target/"* "$work/"; fi
    echo "[fuzz] $target: ${seconds}s"
    log=$FUZZ_WORK/$target.log
    # shellcheck disable=SC2046
    if ! "$(fuzz_binary fast "$target")" $(fuzz_flags "$target") -max_total_time="$seconds" -print_final_stats=1 \
            -artifact_prefix="$FUZZ_ARTIFACTS/$target-" "$work" > "$log" 2>&1; then
        tail -60 "$log"
        echo "[fuzz] $target FAILED: the input is in $FUZZ_ARTIFACTS; add it to Fuzz/regressions/$target, fix the cause, and add a unit test of the fixed behaviour"
        status=1
        continue
    fi
    report_run "$target" "$log"
    replay_under_asan "$target" "$work" || status=1
done
exit $status

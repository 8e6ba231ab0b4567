#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS seconds, after replaying its regression inputs.
# Usage: scripts/fuzz.sh SECONDS    (the targets are built by `make fuzz`)
set -euo pipefail
seconds=${1:?seconds}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.build-fuzz/debug
work=$root/.build-fuzz/work
artifacts=$root/.build-fuzz/artifacts
mkdir -p "$artifacts"
status=0
# Inputs long enough for 16- and 64-bit lengths and fragmented messages: framing up to 64 KiB;
# a connection up to its target's max_message (16 KiB) and some frames around it.
for target in framing connection; do
    case $target in
        framing) binary=$bin/FuzzFraming max_len=65536 ;;
        connection) binary=$bin/FuzzConnection max_len=20000 ;;
    esac
    regressions=$(find "$root/Fuzz/regressions/$target" -type f ! -name '.keep' | sort)
    if [ -n "$regressions" ]; then
        echo "[fuzz] $target: replaying $(echo "$regressions" | wc -l) regression input(s)"
        # shellcheck disable=SC2086
        "$binary" -runs=1 $regressions >/dev/null 2>&1 || { echo "[fuzz] $target: a regression input crashes again"; status=1; }
    fi
    # Fuzz on a copy of the committed seed corpus, so new inputs do not land in the repository.
    rm -rf "$work/$target" && mkdir -p "$work/$target"
    cp "$root/Fuzz/corpus/$target/"* "$work/$target/"
    echo "[fuzz] $target: ${seconds}s"
    if ! "$binary" -max_total_time="$seconds" -max_len="$max_len" -dict="$root/Fuzz/websocket.dict" \
            -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$work/$target" > "$work/$target.log" 2>&1; then
        tail -40 "$work/$target.log"
        echo "[fuzz] $target CRASHED: the input is in $artifacts; add it to Fuzz/regressions/$target and fix the cause"
        status=1
    else
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/$target.log" | sed "s/^/[fuzz] $target: /"
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$target.log")
        echo "[fuzz] $target: ${rate:-?} inputs a second"
    fi
done
exit $status

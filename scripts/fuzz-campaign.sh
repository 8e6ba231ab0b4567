#!/usr/bin/env bash
# A fuzzing campaign: every target in turn, each for an equal share of HOURS, on every core
# (libFuzzer's fork mode: one fuzzing process per core, their finds merged as they come), then
# its corpus merged and minimised into Fuzz/corpus/TARGET (commit it). Writes a summary table
# to Fuzz/CAMPAIGN.md: hours, inputs, coverage of vigil's code at the start and the end, and
# what was found.
# Usage: scripts/fuzz-campaign.sh HOURS    (the targets are built by `make fuzz-campaign`)
set -euo pipefail
hours=${1:?hours}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/fuzz-targets.sh
source "$root/scripts/fuzz-targets.sh"
cores=$(nproc)
count=$(echo "$FUZZ_TARGETS" | wc -w)
seconds=$(awk -v h="$hours" -v n="$count" 'BEGIN { printf "%d", h * 3600 / n }')
campaign=$root/.build-fuzz/campaign
summary=$FUZZ_ROOT/CAMPAIGN.md
rows=""
status=0
started=$(date -u '+%Y-%m-%d %H:%M UTC')

coverage() {  # coverage DIR...: cov and ft after running every input in the directories once
    "$(fuzz_binary release "$target")" $(fuzz_flags "$target") -runs=0 "$@" 2>&1 | grep -a -m1 INITED \
        | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+).*/\1 \2/'
}

for target in $FUZZ_TARGETS; do
    replay_regressions "$target" || status=1
    work=$campaign/$target
    rm -rf "$work" "$work.min" && mkdir -p "$work" "$work.min"
    artefacts_before=$(find "$FUZZ_ARTIFACTS" -name "$target-*" | wc -l)
    cp "$FUZZ_ROOT/seeds/$target/"* "$work/"
    if compgen -G "$FUZZ_ROOT/corpus/$target/*" > /dev/null; then cp "$FUZZ_ROOT/corpus/$target/"* "$work/"; fi
    read -r cov_start ft_start < <(coverage "$work")
    echo "[campaign] $target: ${seconds}s on $cores cores, from cov $cov_start ft $ft_start"
    log=$campaign/$target.log
    # shellcheck disable=SC2046
    if ! "$(fuzz_binary release "$target")" $(fuzz_flags "$target") -fork="$cores" -max_total_time="$seconds" \
            -artifact_prefix="$FUZZ_ARTIFACTS/$target-" "$work" > "$log" 2>&1; then
        status=1
    fi
    runs=$(grep -a -E '^#[0-9]+:' "$log" | tail -1 | sed -E 's/^#([0-9]+):.*/\1/')
    crashes=$(grep -a -E '^#[0-9]+:' "$log" | tail -1 | sed -E 's/.*oom\/timeout\/crash: ([0-9/]+).*/\1/')
    found=$(($(find "$FUZZ_ARTIFACTS" -name "$target-*" | wc -l) - artefacts_before))
    # Merge and minimise: the smallest set of inputs that keeps every feature reached.
    # shellcheck disable=SC2046
    "$(fuzz_binary release "$target")" $(fuzz_flags "$target") -merge=1 "$work.min" "$work" > "$campaign/$target.merge.log" 2>&1
    rm -rf "$FUZZ_ROOT/corpus/$target" && mkdir -p "$FUZZ_ROOT/corpus/$target"
    cp "$work.min/"* "$FUZZ_ROOT/corpus/$target/"
    read -r cov_end ft_end < <(coverage "$FUZZ_ROOT/seeds/$target" "$FUZZ_ROOT/corpus/$target")
    inputs=$(find "$FUZZ_ROOT/corpus/$target" -type f | wc -l)
    echo "[campaign] $target: ${runs:-?} inputs; cov $cov_start → $cov_end, ft $ft_start → $ft_end; oom/timeout/crash $crashes; corpus $inputs inputs"
    rows="$rows| $target | ${runs:-?} | $cov_start → $cov_end | $ft_start → $ft_end | $inputs | ${crashes:-?} (artefacts: $found) |"$'\n'
done

cat > "$summary" <<EOF
# The last fuzzing campaign

\`make fuzz-campaign HOURS=$hours\`, started $started on $(nproc) cores ($(uname -r)), each target
for ${seconds} s in libFuzzer's fork mode with one process per core, optimised with
AddressSanitizer. cov: edges of vigil's own code reached; ft: features (edges with hit-count
buckets). Start: the seeds and the corpus before the run; end: the seeds and the merged,
minimised corpus now in \`Fuzz/corpus/\`.

| target | inputs run | cov start → end | ft start → end | corpus inputs | oom/timeout/crash |
|---|---|---|---|---|---|
$rows
EOF
echo "[campaign] summary in $summary"
exit $status

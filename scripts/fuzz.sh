#!/usr/bin/env bash
# Run quokka's libFuzzer targets: scripts/fuzz.sh BUILD_DIR SECONDS TARGET...
# For each target: replay every kept regression input (fuzz/regressions/<target>/), then fuzz
# for SECONDS from the seed corpus (fuzz/corpus/<target>/, read only; new inputs go to
# BUILD_DIR/corpus/<target>/). A crash leaves its input in BUILD_DIR/crashes/ and fails the
# run: minimise it (the binary with -minimize_crash=1), fix the bug and keep the input in
# fuzz/regressions/<target>/. Prints one line per target: seconds run clean and executions.
set -euo pipefail
build=$1 seconds=$2
shift 2
cd "$(dirname "$0")/.."
status=0
for t in "$@"; do
    bin="$build/fuzz/$t"
    corpus="$build/corpus/$t"
    mkdir -p "$corpus" "$build/crashes"
    regs=(fuzz/regressions/"$t"/*)
    if [ -e "${regs[0]}" ]; then
        "$bin" -runs=0 "${regs[@]}" >"$build/$t.replay.log" 2>&1 || {
            echo "fuzz $t: a regression input fails again (see $build/$t.replay.log)"
            status=1
            continue
        }
    fi
    seeds=()
    [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
    log="$build/$t.log"
    if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/crashes/$t-" "$corpus" "${seeds[@]}" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "fuzz $t: ${seconds} s clean, ${execs:-?} executions, ${cov:-cov: ?}"
    else
        echo "fuzz $t: FAILED (see $log; input in $build/crashes/)"
        tail -30 "$log"
        status=1
    fi
done
exit $status

#!/usr/bin/env bash
# Run the test suite N times in a row under CPU load and report passes and failures.
#
#   tools/stress.sh 20                 # 20 runs, 2 busy CPU workers (the flakiness gate)
#   STRESS_CPUS=4 tools/stress.sh 5    # more load
#   tools/stress.sh 3 tests/reload     # a part of the suite (extra args go to pytest)
#
# The load is `stress --cpu K` when Debian's stress is installed, else K Python busy
# loops. CI=true is set (as in CI: hypothesis derandomized), so a failure here is a
# timing flake, not a newly drawn example. Each run's output is kept in
# $STRESS_LOG_DIR (default: a fresh temporary directory); exit status 1 if any run failed.
set -u

runs="${1:-20}"
shift || true
cpus="${STRESS_CPUS:-2}"
root="$(cd "$(dirname "$0")/.." && pwd)"
logs="${STRESS_LOG_DIR:-$(mktemp -d -t policyd-stress.XXXXXX)}"
mkdir -p "$logs"
python="${PYTHON:-python}"

load_pids=()
stop_load() {
    for pid in "${load_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${load_pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    load_pids=()
}
trap stop_load EXIT
trap 'stop_load; exit 130' INT TERM

if command -v stress >/dev/null 2>&1; then
    stress --cpu "$cpus" >/dev/null 2>&1 &
    load_pids+=("$!")
    load="stress --cpu $cpus"
else
    for _ in $(seq "$cpus"); do
        "$python" -c "while True: pass" &
        load_pids+=("$!")
    done
    load="$cpus Python busy loops"
fi

echo "policyd stress: $runs run(s) of the suite under $load; logs in $logs"
cd "$root" || exit 2
export CI=true LITELLM_LOCAL_MODEL_COST_MAP=True PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

passed=0
failed=0
for run in $(seq "$runs"); do
    log="$logs/run-$run.log"
    started=$(date +%s)
    "$python" -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1
    code=$?
    took=$(($(date +%s) - started))
    summary=$(tail -n 1 "$log")
    if [ "$code" -eq 0 ]; then
        passed=$((passed + 1))
        echo "run $run/$runs: pass (${took}s) $summary"
    else
        failed=$((failed + 1))
        echo "run $run/$runs: FAIL (exit $code, ${took}s) $summary"
        grep -E "^(FAILED|ERROR) " "$log" | sed 's/^/    /'
    fi
done

echo "policyd stress: $passed passed, $failed failed of $runs run(s) under $load"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Run the test suite N times in a row under CPU load and report passes and failures.
#
#   tools/stress.sh 20                 # 20 runs, 2 busy CPU workers (the flakiness gate)
#   STRESS_CPUS=4 tools/stress.sh 5    # more load
#   tools/stress.sh 3 tests/reload     # a part of the suite (extra args go to pytest)
#   STRESS_LANES=2 tools/stress.sh 20  # two runs at a time, each the other's load (root)
#
# The load is `stress --cpu K` when Debian's stress is installed, else K Python busy
# loops. CI=true is set (as in CI: hypothesis derandomized), so a failure here is a
# timing flake, not a newly drawn example. Each run's output is kept in
# $STRESS_LOG_DIR (default: a fresh temporary directory); exit status 1 if any run failed.
#
# With STRESS_LANES=L (L > 1) the runs are split over L lanes running at the same time, the
# busy workers too, so each run also has L-1 other suites for load. Some documented
# commands write to fixed paths under /tmp (the observability tour), so each lane gets a
# private /tmp: a mount namespace of its own (`unshare -m`, which needs root).
set -u

runs="${1:-20}"
shift || true
cpus="${STRESS_CPUS:-2}"
lanes="${STRESS_LANES:-1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$lanes" -gt 1 ]; then  # outside /tmp: each lane gets a private one
    logs="${STRESS_LOG_DIR:-$root/.stress/$(date -u +%Y%m%dT%H%M%SZ)}"
    case "$(realpath -m "$logs")/" in /tmp/*)
        echo "policyd stress: with STRESS_LANES, STRESS_LOG_DIR must be outside /tmp" >&2
        exit 2
        ;;
    esac
else
    logs="${STRESS_LOG_DIR:-$(mktemp -d -t policyd-stress.XXXXXX)}"
fi
mkdir -p "$logs"
python="${PYTHON:-python}"

if [ "$lanes" -gt 1 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null 2>&1; then
        echo "policyd stress: STRESS_LANES needs root and unshare (a private /tmp per lane)" >&2
        exit 2
    fi
    echo "policyd stress: $runs run(s) in $lanes lanes at a time; logs in $logs"
    lane_pids=()
    for lane in $(seq "$lanes"); do
        share=$(((runs + lanes - lane) / lanes))
        lane_cpus=$(((cpus + lanes - lane) / lanes))
        mkdir -p "$logs/lane-$lane"
        STRESS_LANES=1 STRESS_CPUS="$lane_cpus" STRESS_LOG_DIR="$logs/lane-$lane" \
            unshare -m --propagation private \
            sh -c 'mount -t tmpfs tmpfs /tmp && exec "$@"' sh bash "$0" "$share" "$@" \
            >"$logs/lane-$lane.out" 2>&1 &
        lane_pids+=("$!")
    done
    status=0
    for pid in "${lane_pids[@]}"; do
        wait "$pid" || status=1
    done
    cat "$logs"/lane-*.out
    passed=$(cat "$logs"/lane-*.out | grep -c ": pass (")
    echo "policyd stress: $passed passed, $((runs - passed)) failed of $runs run(s) in $lanes lanes"
    exit "$status"
fi

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

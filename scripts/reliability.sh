#!/usr/bin/env bash
# The reliability suite in its long form (docs/reliability.md). The short
# form runs inside the test command (scripts/test.sh); this runs, in turn:
#
#   tests    the reliability tests (storage faults, process faults, partner
#            faults) with HANDOVER_RELIABILITY_LONG=1, in the normal build
#            and under ASan+UBSan
#   fuzz     every libFuzzer target for FUZZ_SECONDS (default 1800), the
#            inputs that add coverage merged into fuzz/corpus/
#   soak     bench/soak.sh: the whole system at 100 times a county's peak
#            rate for SOAK_SECONDS (default 600)
#   peak     bench/peak.sh: peak throughput per adapter, partner protocol to
#            partner protocol
#
#   scripts/reliability.sh [tests] [fuzz] [soak] [peak]   (default: all four)
#
# It takes hours on the 2-core machine (fuzzing alone is 6 x 30 minutes).
# Exits non-zero if any part fails.
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(tests fuzz soak peak)
want() {
    local p
    for p in "${parts[@]}"; do [ "$p" = "$1" ] && return 0; done
    return 1
}

bash scripts/install-deps.sh
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
status=0

build() { # build DIR CMAKE_ARGS...
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j "$(nproc)"
}

if want tests; then
    for variant in normal asan; do
        if [ "$variant" = normal ]; then
            dir=build
            build "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
            mult=1
        else
            dir=build-asan
            build "$dir" -DCMAKE_BUILD_TYPE=Debug -DHANDOVER_SANITIZE=ON
            mult=3
        fi
        echo "=== reliability tests, long form (${variant})"
        (cd "$dir" && HANDOVER_RELIABILITY_LONG=1 \
            HANDOVER_TEST_TIMEOUT_MULTIPLIER=$mult \
            ctest -L reliability --output-on-failure --timeout 7200 -V |
            grep -E '^[0-9]+: (FAULT|CHAOS|PARTNER) |Test +#|tests passed|FAIL') ||
            status=1
    done
fi

if want fuzz; then
    echo "=== fuzzing: each target for ${FUZZ_SECONDS:-1800} s"
    bash scripts/fuzz.sh --grow "${FUZZ_SECONDS:-1800}" || status=1
fi

if want soak || want peak; then
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
if want soak; then
    echo "=== soak: ${SOAK_SECONDS:-600} s"
    BUILD_DIR=build bash bench/soak.sh --duration "${SOAK_SECONDS:-600}" ||
        status=1
fi
if want peak; then
    echo "=== peak throughput per adapter"
    BUILD_DIR=build bash bench/peak.sh || status=1
fi

if [ "$status" -ne 0 ]; then
    echo "=== reliability suite: FAILED (above)" >&2
    exit 1
fi
echo "=== reliability suite: passed"

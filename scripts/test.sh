#!/usr/bin/env bash
# The README's second command: install what is missing, then build and run
# the whole test suite twice, as a normal build and under AddressSanitizer
# and UndefinedBehaviorSanitizer. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

echo "=== style (tools/check-style)"
bash tools/check-style

echo "=== docker-compose.yml (docker-compose config)"
docker-compose config -q

run_suite() {
    local name=$1 dir=$2
    shift 2
    echo "=== ${name}: configure and build (${dir})"
    cmake -S . -B "${dir}" "$@" >/dev/null
    cmake --build "${dir}" -j "$(nproc)"
    echo "=== ${name}: run the tests"
    (cd "${dir}" && ctest --output-on-failure --timeout 900)
}

# Sanitizer builds run slower; tests scale their waits by this factor.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1

status=0
run_suite "normal build" build -DCMAKE_BUILD_TYPE=RelWithDebInfo || status=1
HANDOVER_TEST_TIMEOUT_MULTIPLIER=3 \
    run_suite "sanitizer build (ASan+UBSan)" build-asan \
    -DCMAKE_BUILD_TYPE=Debug -DHANDOVER_SANITIZE=ON || status=1

# Every libFuzzer target, briefly, under ASan+UBSan, from its committed
# corpus (docs/fuzzing.md has the long runs). New inputs go to a scratch
# folder, so the committed corpus only changes by hand.
fuzz_seconds=${HANDOVER_FUZZ_SECONDS:-20}
echo "=== fuzzing: each target for ${fuzz_seconds} s (build-fuzz, clang)"
bash scripts/fuzz.sh "${fuzz_seconds}" || status=1

if [ "${status}" -ne 0 ]; then
    echo "=== FAILED: see the output above for the first failing test" >&2
    exit 1
fi
echo "=== all tests passed in both builds"

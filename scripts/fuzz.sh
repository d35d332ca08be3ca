#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan) and run each in turn.
#
#   scripts/fuzz.sh [--grow] SECONDS [TARGET...]
#
# SECONDS is the time per target; TARGET names (hl7 mllp fhir council
# webhook frame) default to all of them. New inputs go to a scratch folder;
# with --grow, the inputs that add coverage are merged into the committed
# corpus fuzz/corpus/<target>/ at the end (the long runs of
# docs/fuzzing.md). Logs: build-fuzz/<target>_fuzz.log. Exit 1 when a
# target finds a failure (the crashing input is left in build-fuzz/).
set -u
cd "$(dirname "$0")/.."

grow=0
if [ "${1:-}" = "--grow" ]; then
    grow=1
    shift
fi
seconds=${1:?usage: scripts/fuzz.sh [--grow] SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(hl7 mllp fhir council webhook frame)

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug \
    -DHANDOVER_FUZZ=ON -DHANDOVER_TESTS=OFF -DHANDOVER_SANITIZE=ON \
    >/dev/null || exit 1
cmake --build build-fuzz -j "$(nproc)" \
    --target "${targets[@]/%/_fuzz}" >/dev/null || exit 1

status=0
for t in "${targets[@]}"; do
    scratch=$(mktemp -d)
    log="build-fuzz/${t}_fuzz.log"
    if ! "build-fuzz/fuzz/${t}_fuzz" -max_total_time="${seconds}" \
            -print_final_stats=1 -artifact_prefix="build-fuzz/${t}-" \
            "${scratch}" "fuzz/corpus/${t}" >"${log}" 2>&1; then
        tail -n 40 "${log}" >&2
        echo "=== fuzz target ${t} found a failure (above; input in build-fuzz/${t}-*)" >&2
        status=1
    else
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}")
        cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "${log}" | tail -n 1 |
            sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/\1 edges, \2 features/p')
        echo "    ${t}: ${seconds} s, ${execs} executions, ${cov}"
        if [ "${grow}" = 1 ]; then
            before=$(ls "fuzz/corpus/${t}" | wc -l)
            "build-fuzz/fuzz/${t}_fuzz" -merge=1 "fuzz/corpus/${t}" "${scratch}" \
                >>"${log}" 2>&1 || status=1
            echo "    ${t}: corpus ${before} -> $(ls "fuzz/corpus/${t}" | wc -l) files"
        fi
    fi
    rm -rf "${scratch}"
done
exit "${status}"

#!/usr/bin/env bash
# bench/peak.sh -- peak throughput per adapter, partner protocol to partner
# protocol: for each inbound protocol, push a fixed number of events as fast
# as the protocol allows (C senders in parallel), routed out through another
# adapter to its simulator, and measure the inbound accepted rate (an ACK,
# 201 or 200 comes only after the hub's durable Ack; a file counts when the
# adapter has moved it to processed/) and the end-to-end rate (first sent
# to last received by the destination simulator). Prints a table of
# medians.
#
#   bash bench/peak.sh                         # every case, 3 runs each
#   bash bench/peak.sh --cases "hl7 fhir" -r 1 -n 500
#
# Cases:
#   hl7      HL7 ADT^A03 over MLLP -> handover-nursing -> hub -> handover-gp -> FHIR Bundle at gp-sim
#   fhir     FHIR ServiceRequest (POST /fhir) -> handover-gp -> hub -> handover-nursing -> HL7 REF^I12 at nursing-sim
#   files    council referral files -> handover-social -> hub -> handover-voluntary -> signed webhook at voluntary-sim
#   webhook  signed outcome webhooks -> handover-voluntary -> hub -> handover-nursing -> HL7 RRI^I12 at nursing-sim
#            (answering HL7 referrals sent and delivered first, not timed)
#
# Options: --cases "LIST", -r RUNS (3), -n N (per case: hl7 5000, fhir 5000,
# files 1000, webhook 3000), -c C (parallel senders, 8), --no-pause (leave
# libFuzzer processes running), --out FILE (also write the report).
# Each run gets a fresh system (fresh data folder). Right before each
# measurement the libFuzzer processes are paused (pkill -STOP -f _fuzz) and
# they are resumed right after, and on any exit (trap).
# Environment: BUILD_DIR (build/), LOAD_*_PORT (see bench/system.sh).
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/system.sh
source "$(dirname "${BASH_SOURCE[0]}")/system.sh"

CASES="hl7 fhir files webhook"
RUNS=3
N=
CONC=8
PAUSE=1
OUT=
CMDLINE="bash bench/peak.sh"
for a in "$@"; do CMDLINE+=" $(printf '%q' "$a")"; done
while (($#)); do
  case $1 in
    --cases) CASES=$2; shift 2 ;;
    -r) RUNS=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    -c) CONC=$2; shift 2 ;;
    --no-pause) PAUSE=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
need_bins
declare -A DEFAULT_N=([hl7]=5000 [fhir]=5000 [files]=1000 [webhook]=3000)
for c in $CASES; do [[ -n ${DEFAULT_N[$c]:-} ]] || die "unknown case $c"; done

TMP=
LOAD_PID=
PAUSED=0
resume_fuzzers() {
  if ((PAUSED)); then
    pkill -CONT -f '_fuzz' || true
    PAUSED=0
  fi
}
pause_fuzzers() {
  ((PAUSE)) || return 0
  PAUSED=1
  pkill -STOP -f '_fuzz' || true
}
cleanup() {
  local rc=$?
  resume_fuzzers
  [[ -n $LOAD_PID ]] && alive "$LOAD_PID" && { kill -TERM "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; }
  stop_system
  [[ -n $TMP ]] && rm -rf -- "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d "${TMPDIR:-/tmp}/handover-peak.XXXXXX")
RES=$TMP/results.tsv
: >"$RES"

cpu_ticks() { # pid -> utime+stime in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
CLK=$(getconf CLK_TCK)
ALLP=(hub nursing gp social voluntary nursing-sim gp-sim council-sim voluntary-sim)
# whole-machine CPU: "busy idle" jiffies, to say how busy the machine was
cpu_stat() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat; }

for c in $CASES; do
  n=${N:-${DEFAULT_N[$c]}}
  for ((r = 1; r <= RUNS; r++)); do
    d=$TMP/$c-$r
    mkdir -p "$d"
    log "case $c run $r/$RUNS: starting a fresh system"
    start_system "$d/sys" 10
    sleep 2 # let start-up settle (first heartbeats, key exchange)
    mapfile -t LARGS < <(load_args)
    declare -A T0=()
    for p in "${ALLP[@]}"; do T0[$p]=$(cpu_ticks "${PID[$p]}"); done
    la_before=$(cut -d' ' -f1-3 /proc/loadavg)
    fuzz_n=$(pgrep -c -f '_fuzz' || true)
    pause_fuzzers
    read -r busy0 idle0 < <(cpu_stat)
    log "case $c run $r/$RUNS: handover-load peak --case $c -n $n -c $CONC (fuzzers paused: $((PAUSE ? fuzz_n : 0)), loadavg $la_before)"
    set +e
    "$BUILD_DIR/handover-load" peak "${LARGS[@]}" --case "$c" -n "$n" -c "$CONC" \
      --events "$d/events.tsv" >"$d/load.out" 2>&1 &
    LOAD_PID=$!
    wait "$LOAD_PID"
    lrc=$?
    LOAD_PID=
    set -e
    read -r busy1 idle1 < <(cpu_stat)
    resume_fuzzers
    la_after=$(cut -d' ' -f1-3 /proc/loadavg)
    machine=$(awk -v b=$((busy1 - busy0)) -v i=$((idle1 - idle0)) 'BEGIN { printf "%.0f", (b + i > 0 ? 100 * b / (b + i) : 0) }')
    cpu=""
    ours=0
    for p in "${ALLP[@]}"; do
      t1=$(cpu_ticks "${PID[$p]}")
      ours=$((ours + t1 - T0[$p]))
      [[ $p == *-sim ]] && continue
      cpu+="$p=$(awk -v a="${T0[$p]}" -v b="$t1" -v k="$CLK" 'BEGIN { printf "%.1f", (b - a) / k }')s "
    done
    gen=$(sed -n 's/.* cpu_s=\([^ ]*\).*/\1/p' "$d/load.out")
    # what the system under test, its simulators and the generator used,
    # and what everyone else did with the two cores meanwhile
    read -r ours_pct others_pct < <(awk -v o="$ours" -v g="${gen:-0}" -v k="$CLK" \
      -v b=$((busy1 - busy0)) -v i=$((idle1 - idle0)) 'BEGIN {
        t = b + i; us = o + g * k
        if (t <= 0) { print 0, 0; exit }
        oth = b - us; if (oth < 0) oth = 0
        printf "%.0f %.0f\n", 100 * us / t, 100 * oth / t }')
    machine="$machine% (handover, simulators and generator $ours_pct%, other work $others_pct%)"
    check_system_alive
    cat "$d/load.out" >&2
    line=$(grep '^PEAK ' "$d/load.out" || true)
    [[ -n $line ]] || die "handover-load printed no PEAK line (case $c run $r)"
    ((lrc == 0)) || die "case $c run $r: events lost, refused or not delivered (exit $lrc): $line"
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$r" "$n" "$CONC" \
      "$(get inbound_rate)" "$(get e2e_rate)" "$(get lost)" "$la_before" "$la_after" \
      "$cpu" "$(get delivered)" "$machine" "$((PAUSE ? fuzz_n : 0))" >>"$RES"
    log "case $c run $r: inbound $(get inbound_rate)/s, end-to-end $(get e2e_rate)/s, lost $(get lost); loadavg after $la_after; machine CPU busy $machine; CPU $cpu"
    stop_system
    rm -rf "$d/sys"
  done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A ROUTE=(
  [hl7]="HL7 ADT^A03 / MLLP -> nursing -> hub -> gp -> FHIR Bundle (gp-sim)"
  [fhir]="FHIR ServiceRequest / HTTP -> gp -> hub -> nursing -> HL7 REF^I12 (nursing-sim)"
  [files]="council referral files -> social -> hub -> voluntary -> signed webhook (voluntary-sim)"
  [webhook]="signed outcome webhooks -> voluntary -> hub -> nursing -> HL7 RRI^I12 (nursing-sim)"
)
REPORT=$TMP/report.md
{
  echo "## Peak throughput, partner protocol to partner protocol"
  echo
  echo "$RUNS run(s) per case, each on a fresh system (hub with CURVE, 4 adapters, 4 simulators), $CONC senders in parallel; medians. Inbound = events accepted per second (the partner's ACK/201/200 only after the hub's durable Ack; a file when moved to processed/). End-to-end = events received by the destination simulator / (last received - first sent)."
  echo
  echo "| case | route | events | inbound accepted/s | end-to-end/s | runs (inbound; e2e) | lost |"
  echo "|---|---|---:|---:|---:|---|---:|"
  for c in $CASES; do
    ib=$(awk -F'\t' -v c="$c" '$1 == c { print $5 }' "$RES" | median)
    e2=$(awk -F'\t' -v c="$c" '$1 == c { print $6 }' "$RES" | median)
    runs=$(awk -F'\t' -v c="$c" '$1 == c { a = a sep $5; b = b sep $6; sep = ", " } END { print a "; " b }' "$RES")
    lost=$(awk -F'\t' -v c="$c" '$1 == c { s += $7 } END { print s + 0 }' "$RES")
    n=$(awk -F'\t' -v c="$c" '$1 == c { print $3; exit }' "$RES")
    printf '| %s | %s | %s | %.0f | %.0f | %s | %s |\n' "$c" "${ROUTE[$c]}" "$n" "$ib" "$e2" "$runs" "$lost"
  done
  echo
  echo "Machine load per run (1/5/15-min loadavg before -> after; share of both cores busy during the measurement, split into Handover with its simulators and the load generator, and other work; CPU seconds used by each Handover process; libFuzzer processes paused):"
  echo
  awk -F'\t' '{ printf "- %s run %s: loadavg %s -> %s; machine busy %s; %s; fuzzers paused: %s\n", $1, $2, $8, $9, $12, $10, $13 }' "$RES"
  echo
  echo "Machine: $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); libFuzzer processes $( ((PAUSE)) && echo 'paused (SIGSTOP) during each measurement' || echo 'left running')."
  echo "Command: \`BUILD_DIR=$BUILD_DIR $CMDLINE\`"
} >"$REPORT"
echo
cat "$REPORT"
[[ -n $OUT ]] && cp "$REPORT" "$OUT"
exit 0

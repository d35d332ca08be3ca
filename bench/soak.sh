#!/usr/bin/env bash
# bench/soak.sh -- run the whole system (hub, four adapters, four partner
# simulators) and drive the traffic mix of domain 2.4 through the partners'
# protocols at a fixed rate for a bounded time; sample memory and queue
# depths; check at the simulators that nothing accepted was lost.
#
#   bash bench/soak.sh                    # 5 events/s (100x county, peak hour), 10 min
#   bash bench/soak.sh --smoke            # 60 s
#   bash bench/soak.sh --rate 1.6 --duration 3600 --csv soak.csv
#
# Options: --rate R (events/s, 5), --duration S (600), --smoke (60 s, 15 s
# warm-up), --warmup S (warm-up before the flatness reference, default
# duration/5 capped at 120), --sample S (5), --drain S (time allowed after
# the last send for every delivery, 120), --csv FILE (samples; default
# $BUILD_DIR/soak-<UTC time>.csv), --events FILE (one line per event sent, TSV).
# Environment: BUILD_DIR (build/), LOAD_*_PORT (see bench/system.sh).
# Exits non-zero if anything accepted was lost, anything was refused, or
# a process died.
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/system.sh
source "$(dirname "${BASH_SOURCE[0]}")/system.sh"

RATE=5
DURATION=600
WARMUP=
SAMPLE_S=5
DRAIN=120
CSV=
EVENTS=
while (($#)); do
  case $1 in
    --rate) RATE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --smoke) DURATION=60; WARMUP=${WARMUP:-15}; shift ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --sample) SAMPLE_S=$2; shift 2 ;;
    --drain) DRAIN=$2; shift 2 ;;
    --csv) CSV=$2; shift 2 ;;
    --events) EVENTS=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $DURATION =~ ^[0-9]+$ && $SAMPLE_S =~ ^[0-9]+$ && $DRAIN =~ ^[0-9]+$ ]] ||
  die "--duration, --sample and --drain take whole seconds"
[[ -n $WARMUP ]] || WARMUP=$((DURATION / 5 > 120 ? 120 : DURATION / 5))
[[ -n $CSV ]] || CSV=$BUILD_DIR/soak-$(date -u +%Y%m%dT%H%M%SZ).csv
need_bins

TMP=
LOAD_PID=
SAMPLER_PID=
cleanup() {
  local rc=$?
  [[ -n $LOAD_PID ]] && alive "$LOAD_PID" && { kill -TERM "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; }
  [[ -n $SAMPLER_PID ]] && { kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; }
  stop_system
  [[ -n $TMP ]] && rm -rf -- "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d "${TMPDIR:-/tmp}/handover-soak.XXXXXX")
log "starting hub, adapters and simulators in $TMP (removed at exit)"
start_system "$TMP/sys" 100
log "system up: hub $ENDPOINT, MLLP $MLLP_PORT, FHIR $FHIR_PORT, webhooks $HOOK_PORT"

PROCS=(hub nursing gp social voluntary)
# One CSV line every SAMPLE_S seconds. VmRSS is what the brief asks for;
# RssAnon is the private part, without the memory-mapped LMDB pages the
# hub has touched (which grow with the data kept, and are not a leak).
sample_line() {
  local t=$1 phase=$2 p v a line q
  line="$t,$phase"
  for p in "${PROCS[@]}"; do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/${PID[$p]}/status" 2>/dev/null || true)
    a=$(awk '/^RssAnon:/ { print $2 }' "/proc/${PID[$p]}/status" 2>/dev/null || true)
    line+=",${v:-},${a:-}"
  done
  q=$("$BUILD_DIR/handover-ctl" --data "$TMP/sys/data" --json --timeout 5 queues 2>/dev/null |
      jq -r '[(.queues // .) | .[] | {(.agency): .depth}] | add |
             "\(.gp // ""),\(.nursing // ""),\(.social // ""),\(.voluntary // ""),\([.[]] | add // "")"' 2>/dev/null || true)
  [[ -n $q ]] || q=",,,,"
  printf '%s,%s\n' "$line" "$q"
}
{
  printf 't_s,phase'
  for p in "${PROCS[@]}"; do printf ',%s_vmrss_kb,%s_rssanon_kb' "$p" "$p"; done
  printf ',depth_gp,depth_nursing,depth_social,depth_voluntary,depth_total\n'
} >"$TMP/samples.csv"
: >"$TMP/phase"
T0=$(date +%s)
( while :; do
    ph=$(cat "$TMP/phase" 2>/dev/null || true)
    sample_line "$(($(date +%s) - T0))" "${ph:-send}" >>"$TMP/samples.csv"
    sleep "$SAMPLE_S"
  done ) &
SAMPLER_PID=$!

mapfile -t LARGS < <(load_args)
log "handover-load soak --rate $RATE --duration $DURATION --drain $DRAIN"
set +e
"$BUILD_DIR/handover-load" soak "${LARGS[@]}" --rate "$RATE" --duration "$DURATION" \
  --drain "$DRAIN" --events "$TMP/events.tsv" > >(tee "$TMP/load.out") 2>&1 &
LOAD_PID=$!
while alive "$LOAD_PID"; do
  grep -q 'sending done' "$TMP/load.out" 2>/dev/null && echo drain >"$TMP/phase"
  for n in hub nursing gp social voluntary nursing-sim gp-sim council-sim voluntary-sim; do
    alive "${PID[$n]}" || { echo "FAILED: $n died during the soak" >&2; kill -TERM "$LOAD_PID"; }
  done
  sleep 1
done
wait "$LOAD_PID"
LOAD_RC=$?
LOAD_PID=
set -e
sample_line "$(($(date +%s) - T0))" end >>"$TMP/samples.csv"
kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=
check_system_alive
cp "$TMP/samples.csv" "$CSV"
[[ -n $EVENTS ]] && cp "$TMP/events.tsv" "$EVENTS"

# Adapter-side counts, independent of handover-load's own bookkeeping.
acc=0
for a in nursing gp social voluntary; do
  c=$(grep -c ' accepted ' "$TMP/sys/$a.log" || true)
  acc=$((acc + c))
done
hub_summary=$(grep ' summary ' "$TMP/sys/hub.log" | tail -n 1 | sed 's/^.* summary //' || true)
dead=$("$BUILD_DIR/handover-ctl" --data "$TMP/sys/data" --json dead-letters 2>/dev/null | jq -r '.total' 2>/dev/null || echo '?')

echo
echo "## Soak summary"
echo
grep '^SOAK ' "$TMP/load.out" | sed 's/^SOAK /load: /'
echo "adapters logged 'accepted' for $acc events; dead letters at the end: $dead"
echo "hub: ${hub_summary:-no summary line}"
echo
awk -F, -v warm="$WARMUP" -v procs="${PROCS[*]}" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  { rows++; t[rows] = $1; for (i = 1; i <= NF; i++) v[rows, i] = $i }
  END {
    np = split(procs, P, " ")
    # the warm-up reference: the first sample at or after the warm-up time
    w = rows; for (r = 1; r <= rows; r++) if (t[r] + 0 >= warm) { w = r; break }
    printf "memory, MiB (VmRSS / RssAnon); warm = first sample at t >= %d s (t=%s s); %d samples\n\n", warm, t[w], rows
    printf "| process | start | warm | end | max | growth after warm-up | flat |\n|---|---:|---:|---:|---:|---:|---|\n"
    allflat = 1
    for (k = 1; k <= np; k++) {
      p = P[k]; cv = col[p "_vmrss_kb"]; ca = col[p "_rssanon_kb"]
      mv = 0; ma = 0
      for (r = 1; r <= rows; r++) { if (v[r, cv] > mv) mv = v[r, cv]; if (v[r, ca] > ma) ma = v[r, ca] }
      gv = v[w, cv] > 0 ? 100 * (v[rows, cv] - v[w, cv]) / v[w, cv] : 0
      ga = v[w, ca] > 0 ? 100 * (v[rows, ca] - v[w, ca]) / v[w, ca] : 0
      # a few hundred KiB is allocator noise on a process this small
      ok = ga < 10 || v[rows, ca] - v[w, ca] < 512
      flat = ok ? "yes" : "NO"; if (!ok) allflat = 0
      printf "| %s | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %+.1f%% / %+.1f%% | %s (VmRSS %s) |\n", p,
        v[1, cv] / 1024, v[1, ca] / 1024, v[w, cv] / 1024, v[w, ca] / 1024,
        v[rows, cv] / 1024, v[rows, ca] / 1024, mv / 1024, ma / 1024, gv, ga, flat, gv < 10 ? "flat" : "grew"
    }
    cd = col["depth_total"]; md = 0; mt = 0; sendrows = 0
    for (r = 1; r <= rows; r++) { if (v[r, cd] > md) { md = v[r, cd]; mt = t[r] } if (v[r, 2] == "send") sendrows = r }
    # depth trend while sending: mean of the 2nd third against the last third
    a = int(sendrows / 3); s1 = 0; n1 = 0; s2 = 0; n2 = 0
    for (r = a + 1; r <= 2 * a; r++) { s1 += v[r, cd]; n1++ }
    for (r = 2 * a + 1; r <= sendrows; r++) { s2 += v[r, cd]; n2++ }
    m1 = n1 ? s1 / n1 : 0; m2 = n2 ? s2 / n2 : 0
    dflat = (m2 <= m1 * 1.5 + 5)
    printf "\nqueue depth (all agencies, delivered-not-yet-settled included): max %d at t=%s s; mean %.1f in the middle third of the sending phase, %.1f in the last third; at the end %s: %s\n",
      md, mt, m1, m2, v[rows, cd], dflat ? "flat" : "GROWING"
    printf "memory flat (RssAnon growth after warm-up < 10%% or < 512 KiB, every process): %s\n", allflat ? "yes" : "NO"
  }' "$CSV"
echo
echo "samples: $CSV"
echo "command: bash bench/soak.sh --rate $RATE --duration $DURATION --warmup $WARMUP --sample $SAMPLE_S --drain $DRAIN (BUILD_DIR=$BUILD_DIR)"
((LOAD_RC == 0)) || die "handover-load reported lost, refused or unanswered events (exit $LOAD_RC); see the lines above"
echo "soak passed: nothing lost"

#!/usr/bin/env bash
# Quick start: install what is missing, build, start a hub on its built-in
# default configuration with a fresh data folder, play the demo against it,
# show the hub's summary, and stop the hub. Exits with the demo's status.
#
#   scripts/demo.sh                                      # tcp://127.0.0.1:7400
#   HANDOVER_ENDPOINT=tcp://127.0.0.1:7401 scripts/demo.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
endpoint=${HANDOVER_ENDPOINT:-tcp://127.0.0.1:7400}
ready_limit_s=10   # the hub must say "ready" by then
stop_limit_s=10    # and must stop this soon after SIGTERM

heading() { printf '\n==== %s ====\n' "$*"; }
die() { printf 'demo.sh: %s\n' "$*" >&2; exit 1; }

tmp=
hub_pid=
nursing_pid=
sim_pid=
mllp_port=${HANDOVER_MLLP_PORT:-7420}
sim_port=${HANDOVER_NURSING_SIM_PORT:-7421}
stop_pid() { # stop_pid PID: SIGTERM, wait
  if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  stop_pid "$nursing_pid"
  stop_pid "$sim_pid"
  if [[ -n $hub_pid ]] && kill -0 "$hub_pid" 2>/dev/null; then
    kill -TERM "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
  fi
  if [[ -n $tmp ]]; then rm -rf -- "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Is something already listening on a tcp:// endpoint?
port_busy() {
  local hostport=${1#tcp://}
  [[ $1 == tcp://* && $hostport == *:* ]] || return 1
  local host=${hostport%:*} port=${hostport##*:}
  [[ $host == '*' || $host == 0.0.0.0 ]] && host=127.0.0.1
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}


heading "checking build dependencies"
"$root/scripts/install-deps.sh"
echo "all present"

heading "building handover-hub, the adapters and the demo tools (RelWithDebInfo) in build/"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  --log-level=WARNING
cmake --build "$build" -j"$(nproc)" --target handover-hub handover-demo \
  handover-nursing nursing-sim

heading "hub starting on $endpoint"
if port_busy "$endpoint"; then
  die "$endpoint is busy: another program (perhaps another handover-hub)" \
      "listens there. Stop it, or pick a free port:" \
      "HANDOVER_ENDPOINT=tcp://127.0.0.1:7401 scripts/demo.sh"
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/handover-demo.XXXXXX")
echo "data folder $tmp/data (removed at the end), built-in configuration"
"$build/handover-hub" --data "$tmp/data" --endpoint "$endpoint" \
  2>"$tmp/hub.log" &
hub_pid=$!
for ((i = 0; i < ready_limit_s * 10; i++)); do
  grep -q ' ready endpoint=' "$tmp/hub.log" && break
  if ! kill -0 "$hub_pid" 2>/dev/null; then
    cat "$tmp/hub.log" >&2
    hub_pid=
    if grep -q 'Address already in use' "$tmp/hub.log"; then
      die "$endpoint is busy: pick a free port with HANDOVER_ENDPOINT"
    fi
    die "handover-hub exited before it was ready (its log is above)"
  fi
  sleep 0.1
done
grep -q ' ready endpoint=' "$tmp/hub.log" ||
  die "handover-hub did not say ready within ${ready_limit_s} s"
grep ' ready endpoint=' "$tmp/hub.log"

heading "events flowing"
demo_status=0
"$build/handover-demo" --endpoint "$endpoint" || demo_status=$?

heading "HL7 v2 over MLLP: the community nursing adapter"
for p in "$mllp_port" "$sim_port"; do
  if port_busy "tcp://127.0.0.1:$p"; then
    die "127.0.0.1:$p is busy; pick free ports with HANDOVER_MLLP_PORT" \
        "and HANDOVER_NURSING_SIM_PORT"
  fi
done
"$build/nursing-sim" serve --port "$sim_port" >"$tmp/nursing-sim.log" 2>&1 &
sim_pid=$!
"$build/handover-nursing" --set "hub.endpoint=$endpoint" \
  --set "listen.port=$mllp_port" --set "partner.port=$sim_port" \
  2>"$tmp/nursing.log" &
nursing_pid=$!
for ((i = 0; i < ready_limit_s * 10; i++)); do
  grep -q 'hub up' "$tmp/nursing.log" && break
  kill -0 "$nursing_pid" 2>/dev/null ||
    { cat "$tmp/nursing.log" >&2; nursing_pid=; die "handover-nursing exited"; }
  sleep 0.1
done
grep -q 'hub up' "$tmp/nursing.log" ||
  die "handover-nursing did not reach the hub within ${ready_limit_s} s"
echo "handover-nursing: MLLP in on 127.0.0.1:$mllp_port, out to the" \
     "nursing simulator on 127.0.0.1:$sim_port"
echo
echo "-- the trust's PAS and the nursing system send HL7 to handover-nursing" \
     "(each ACK comes only after the hub's durable Ack):"
"$build/nursing-sim" send --port "$mllp_port" "$root"/samples/hl7/valid/*.hl7 \
  || demo_status=1
# Edith's discharge (pathway 1) is routed back to community nursing, and
# leaves as an ADT^A03 over MLLP.
for ((i = 0; i < 50; i++)); do
  grep -q 'HL7 in  ADT' "$tmp/nursing-sim.log" && break
  sleep 0.1
done
echo
echo "-- handover-nursing delivers to the community nursing system (simulator):"
grep 'HL7 in' "$tmp/nursing-sim.log" | sed 's/^/  /' ||
  { echo "  (nothing arrived)"; demo_status=1; }
echo
echo "-- handover-nursing log:"
stop_pid "$nursing_pid"
nursing_pid=
stop_pid "$sim_pid"
sim_pid=
grep -E 'accepted|refused|delivered|settled' "$tmp/nursing.log" |
  sed 's/^[^ ]* handover-nursing /  /' | head -n 20

heading "stopping the hub"
# The hub logs a summary line when it stops (and every 10 s under traffic);
# until the status socket lands, that line and the log are its status.
kill -TERM "$hub_pid"
for ((i = 0; i < stop_limit_s * 10; i++)); do
  kill -0 "$hub_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$hub_pid" 2>/dev/null; then
  kill -KILL "$hub_pid" 2>/dev/null || true
  wait "$hub_pid" 2>/dev/null || true
  hub_pid=
  die "handover-hub did not stop within ${stop_limit_s} s of SIGTERM (killed)"
fi
hub_status=0
wait "$hub_pid" || hub_status=$?
hub_pid=
if ((hub_status != 0)); then
  echo "handover-hub exited with status $hub_status after SIGTERM, not 0" >&2
  ((demo_status != 0)) || demo_status=1
else
  echo "hub stopped cleanly (exit 0)"
fi

heading "hub status"
last=$(grep ' summary ' "$tmp/hub.log" | tail -n 1 || true)
echo "${last:-(no summary logged)}" | sed 's/^.* summary /  /; s/ queued /\n  queued /'
echo
echo "hub log, last 20 lines:"
tail -n 20 "$tmp/hub.log" | sed 's/^/  /'

if ((demo_status == 0)); then
  heading "demo passed"
else
  heading "demo FAILED (status $demo_status)"
fi
exit "$demo_status"

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
gp_pid=
gpsim_pid=
mllp_port=${HANDOVER_MLLP_PORT:-7420}
sim_port=${HANDOVER_NURSING_SIM_PORT:-7421}
fhir_port=${HANDOVER_FHIR_PORT:-7410}
gpsim_port=${HANDOVER_GP_SIM_PORT:-7411}
stop_pid() { # stop_pid PID: SIGTERM, wait
  if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  stop_pid "$nursing_pid"
  stop_pid "$sim_pid"
  stop_pid "$gp_pid"
  stop_pid "$gpsim_pid"
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
  handover-nursing nursing-sim handover-gp gp-sim handover-ctl

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

heading "the adapters: community nursing (HL7 v2 over MLLP) and GP system (FHIR)"
for p in "$mllp_port" "$sim_port" "$fhir_port" "$gpsim_port"; do
  if port_busy "tcp://127.0.0.1:$p"; then
    die "127.0.0.1:$p is busy; pick free ports with HANDOVER_MLLP_PORT," \
        "HANDOVER_NURSING_SIM_PORT, HANDOVER_FHIR_PORT and HANDOVER_GP_SIM_PORT"
  fi
done
"$build/nursing-sim" serve --port "$sim_port" >"$tmp/nursing-sim.log" 2>&1 &
sim_pid=$!
"$build/gp-sim" serve --port "$gpsim_port" >"$tmp/gp-sim.log" 2>&1 &
gpsim_pid=$!
"$build/handover-nursing" --set "hub.endpoint=$endpoint" \
  --set "listen.port=$mllp_port" --set "partner.port=$sim_port" \
  2>"$tmp/nursing.log" &
nursing_pid=$!
"$build/handover-gp" --set "hub.endpoint=$endpoint" \
  --set "listen.port=$fhir_port" \
  --set "partner.url=http://127.0.0.1:$gpsim_port/fhir" 2>"$tmp/gp.log" &
gp_pid=$!
wait_log() { # wait_log FILE TEXT PID NAME
  for ((i = 0; i < ready_limit_s * 10; i++)); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1" >&2; die "$4 exited"; }
    sleep 0.1
  done
  die "$4 did not log '$2' within ${ready_limit_s} s"
}
wait_log "$tmp/nursing.log" 'hub up' "$nursing_pid" handover-nursing
wait_log "$tmp/gp.log" 'hub up' "$gp_pid" handover-gp
echo "handover-nursing: MLLP in on 127.0.0.1:$mllp_port, out to the" \
     "nursing system (simulator) on 127.0.0.1:$sim_port"
echo "handover-gp: FHIR in on http://127.0.0.1:$fhir_port/fhir, out to the" \
     "GP system (simulator) on http://127.0.0.1:$gpsim_port/fhir"
echo
echo "-- the trust's PAS and the nursing system send HL7 to handover-nursing" \
     "(each ACK comes only after the hub's durable Ack):"
"$build/nursing-sim" send --port "$mllp_port" "$root"/samples/hl7/valid/*.hl7 \
  || demo_status=1
echo
echo "-- the GP system posts a referral to district nursing as FHIR:"
code=$(curl -sS -o "$tmp/referral.out" -D "$tmp/referral.hdr" \
  -w '%{http_code}' -X POST "http://127.0.0.1:$fhir_port/fhir" \
  -H 'Content-Type: application/fhir+json' \
  --data-binary @"$root/samples/fhir/valid/referral-message-bundle.json") ||
  code=000
echo "  POST /fhir (message Bundle, ServiceRequest for Patrick O'Driscoll)" \
     "-> $code $(grep -i '^Location:' "$tmp/referral.hdr" | tr -d '\r')"
[[ $code == 201 ]] || demo_status=1
wait_log "$tmp/nursing-sim.log" 'REF\^I12' "$sim_pid" nursing-sim
echo
echo "-- community nursing accepts it and answers in HL7 (RRI^I12):"
"$build/nursing-sim" send --port "$mllp_port" \
  "$root/samples/hl7/outcomes/rri-i12-referral-accepted-enhanced-mode.hl7" ||
  demo_status=1
wait_log "$tmp/gp-sim.log" 'POST /fhir/Task' "$gpsim_pid" gp-sim
echo
echo "-- what reached the community nursing system (HL7, simulator):"
grep 'HL7 in' "$tmp/nursing-sim.log" | sed 's/^nursing-sim: /  /' ||
  { echo "  (nothing arrived)"; demo_status=1; }
echo
echo "-- what reached the GP system (FHIR, simulator):"
grep 'FHIR in' "$tmp/gp-sim.log" | sed 's/^gp-sim: /  /' ||
  { echo "  (nothing arrived)"; demo_status=1; }
echo
echo "-- the adapters' logs:"
stop_pid "$nursing_pid"
nursing_pid=
stop_pid "$gp_pid"
gp_pid=
stop_pid "$sim_pid"
sim_pid=
stop_pid "$gpsim_pid"
gpsim_pid=
grep -hE ' (accepted|refused|delivered|settled|duplicate) ' \
  "$tmp/nursing.log" "$tmp/gp.log" |
  sed 's/^[^ ]* handover-/  /' | head -n 24

heading "hub status (handover-ctl status)"
"$build/handover-ctl" --data "$tmp/data" status | sed 's/^/  /' || true

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

heading "hub summary at shutdown"
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

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
social_pid=
csim_pid=
vol_pid=
vsim_pid=
mllp_port=${HANDOVER_MLLP_PORT:-7420}
sim_port=${HANDOVER_NURSING_SIM_PORT:-7421}
fhir_port=${HANDOVER_FHIR_PORT:-7410}
gpsim_port=${HANDOVER_GP_SIM_PORT:-7411}
hook_port=${HANDOVER_WEBHOOK_PORT:-7440}
vsim_port=${HANDOVER_VOLUNTARY_SIM_PORT:-7441}
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
  stop_pid "$social_pid"
  stop_pid "$csim_pid"
  stop_pid "$vol_pid"
  stop_pid "$vsim_pid"
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
  handover-nursing nursing-sim handover-gp gp-sim handover-ctl \
  handover-social council-sim handover-voluntary voluntary-sim handover-audit

heading "hub starting on $endpoint"
if port_busy "$endpoint"; then
  die "$endpoint is busy: another program (perhaps another handover-hub)" \
      "listens there. Stop it, or pick a free port:" \
      "HANDOVER_ENDPOINT=tcp://127.0.0.1:7401 scripts/demo.sh"
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/handover-demo.XXXXXX")
# CURVE on the hub socket: a key pair for the hub and one per agency
# (handover-ctl keygen), and the built-in configuration with a curve:
# section mapping each agency's public key to that agency.
keys=$tmp/keys
mkdir -m 700 "$keys"
declare -A pub
for name in hub gp nursing social voluntary; do
  pub[$name]=$("$build/handover-ctl" keygen "$name" --dir "$keys")
done
{
  "$build/handover-hub" --print-default-config
  echo "curve:"
  echo "  secret_key_file: $keys/hub.key"
  echo "  clients:"
  for a in gp nursing social voluntary; do
    echo "    - {name: $a-demo, agency: $a, public_key: '${pub[$a]}'}"
  done
} >"$tmp/hub.yaml"
echo "data folder $tmp/data (removed at the end); the built-in configuration"
echo "with CURVE: keys for the hub and each agency in $keys (handover-ctl keygen)"
"$build/handover-hub" --config "$tmp/hub.yaml" --data "$tmp/data" \
  --endpoint "$endpoint" 2>"$tmp/hub.log" &
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
"$build/handover-demo" --endpoint "$endpoint" --keys "$keys" || demo_status=$?

heading "the four adapters and their partners (simulated)"
for p in "$mllp_port" "$sim_port" "$fhir_port" "$gpsim_port" "$hook_port" \
         "$vsim_port"; do
  if port_busy "tcp://127.0.0.1:$p"; then
    die "127.0.0.1:$p is busy; pick free ports with HANDOVER_MLLP_PORT," \
        "HANDOVER_NURSING_SIM_PORT, HANDOVER_FHIR_PORT, HANDOVER_GP_SIM_PORT," \
        "HANDOVER_WEBHOOK_PORT and HANDOVER_VOLUNTARY_SIM_PORT"
  fi
done
council=$tmp/council
mkdir -p "$council/inbox" "$council/outbox"
# The demo's own webhook secret (domain 8.6: secrets stay out of YAML).
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077
 for org in local:VCS-0001 local:VCS-0002 local:VCS-0003; do
   echo "$org - ${org#local:}-demo $secret"
 done >"$tmp/voluntary-orgs")
"$build/nursing-sim" serve --port "$sim_port" >"$tmp/nursing-sim.log" 2>&1 &
sim_pid=$!
"$build/gp-sim" serve --port "$gpsim_port" >"$tmp/gp-sim.log" 2>&1 &
gpsim_pid=$!
"$build/council-sim" take --outbox "$council/outbox" \
  --taken "$council/taken" --interval-ms 100 >"$tmp/council-sim.log" 2>&1 &
csim_pid=$!
"$build/voluntary-sim" serve --port "$vsim_port" --secret "$secret" \
  >"$tmp/voluntary-sim.log" 2>&1 &
vsim_pid=$!
# Each adapter's CURVE settings: the hub's public key and its own key pair
# (arrays: a Z85 key may hold characters the shell would glob).
declare -A curve_key_file
for a in gp nursing social voluntary; do
  curve_key_file[$a]="hub.curve_key_file=$keys/$a.key"
done
server_key="hub.curve_server_key=${pub[hub]}"
"$build/handover-nursing" --set "hub.endpoint=$endpoint" --set "$server_key" --set "${curve_key_file[nursing]}" \
  --set "listen.port=$mllp_port" --set "partner.port=$sim_port" \
  2>"$tmp/nursing.log" &
nursing_pid=$!
"$build/handover-gp" --set "hub.endpoint=$endpoint" --set "$server_key" --set "${curve_key_file[gp]}" \
  --set "listen.port=$fhir_port" \
  --set "partner.url=http://127.0.0.1:$gpsim_port/fhir" 2>"$tmp/gp.log" &
gp_pid=$!
"$build/handover-social" --set "hub.endpoint=$endpoint" --set "$server_key" --set "${curve_key_file[social]}" \
  --set "files.inbox=$council/inbox" --set "files.outbox=$council/outbox" \
  --set files.scan_interval_ms=500 2>"$tmp/social.log" &
social_pid=$!
"$build/handover-voluntary" --set "hub.endpoint=$endpoint" \
  --set "$server_key" --set "${curve_key_file[voluntary]}" \
  --set "listen.port=$hook_port" --set "partner.orgs_file=$tmp/voluntary-orgs" \
  --set "partner.default_url=http://127.0.0.1:$vsim_port/handover/v1/referrals" \
  2>"$tmp/voluntary.log" &
vol_pid=$!
wait_log() { # wait_log FILE TEXT PID NAME [COUNT]
  for ((i = 0; i < ready_limit_s * 10; i++)); do
    (($(grep -c "$2" "$1" || true) >= ${5:-1})) && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1" >&2; die "$4 exited"; }
    sleep 0.1
  done
  die "$4 did not log '$2' within ${ready_limit_s} s"
}
wait_log "$tmp/nursing.log" 'hub up' "$nursing_pid" handover-nursing
wait_log "$tmp/gp.log" 'hub up' "$gp_pid" handover-gp
wait_log "$tmp/social.log" 'hub up' "$social_pid" handover-social
wait_log "$tmp/voluntary.log" 'hub up' "$vol_pid" handover-voluntary
echo "handover-nursing    HL7 v2/MLLP in on 127.0.0.1:$mllp_port;" \
     "out to the nursing system on 127.0.0.1:$sim_port"
echo "handover-gp         FHIR in on http://127.0.0.1:$fhir_port/fhir;" \
     "out to the GP system on http://127.0.0.1:$gpsim_port/fhir"
echo "handover-social     files in $council/inbox; out to $council/outbox"
echo "handover-voluntary  webhooks in on http://127.0.0.1:$hook_port;" \
     "signed out to http://127.0.0.1:$vsim_port"
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
echo
echo "-- a council social worker drops a referral file for a voluntary" \
     "organisation:"
f=referral_Z9Z9Z_20250317T090500Z_000007.json
cp "$root/samples/council/valid/$f" "$council/inbox/$f.tmp"
mv "$council/inbox/$f.tmp" "$council/inbox/$f"
echo "  $f -> inbox"
# Wait for the requests to reach their partners before they answer.
wait_log "$tmp/nursing-sim.log" 'REF\^I12' "$sim_pid" nursing-sim
wait_log "$tmp/council-sim.log" 'taken event=' "$csim_pid" council-sim 4
wait_log "$tmp/voluntary-sim.log" 'referral in' "$vsim_pid" voluntary-sim 2
echo
echo "-- the partners answer; each outcome goes back to the event's source:"
"$build/nursing-sim" send --port "$mllp_port" \
  "$root/samples/hl7/outcomes/rri-i12-referral-accepted-enhanced-mode.hl7" ||
  demo_status=1
for f in "$root"/samples/council/outcomes/*.csv; do
  b=$(basename "$f")
  cp "$f" "$council/inbox/$b.tmp" && mv "$council/inbox/$b.tmp" "$council/inbox/$b"
  echo "  council/CES outcome file $b -> inbox"
done
"$build/voluntary-sim" post-outcome \
  --url "http://127.0.0.1:$hook_port/webhooks/v1/outcome" --secret "$secret" \
  --sender local:VCS-0002 --key-id VCS-0002-demo \
  --in-reply-to 25e14237-735f-51b9-b0fb-c87ec41a3aae --status accepted \
  --planned-for 2025-03-20 >"$tmp/post-outcome.log" 2>&1 || demo_status=1
echo "  Brackenby Befrienders' signed outcome webhook ->" \
     "$(grep -o 'status=[0-9]*' "$tmp/post-outcome.log" | tail -n 1)"
wait_log "$tmp/gp-sim.log" 'POST /fhir/Task' "$gpsim_pid" gp-sim
wait_log "$tmp/nursing-sim.log" 'HL7 in' "$sim_pid" nursing-sim 6
echo
echo "-- what reached the community nursing system (HL7, simulator):"
grep 'HL7 in' "$tmp/nursing-sim.log" | sed 's/^nursing-sim: /  /' ||
  { echo "  (nothing arrived)"; demo_status=1; }
echo
echo "-- what reached the GP system (FHIR, simulator):"
grep 'FHIR in' "$tmp/gp-sim.log" | sed 's/^gp-sim: /  /' ||
  { echo "  (nothing arrived)"; demo_status=1; }
echo
echo "-- what reached the council and the equipment service (files):"
grep 'taken event=' "$tmp/council-sim.log" | sed 's/^/  /' ||
  { echo "  (nothing arrived)"; demo_status=1; }
echo "  processed: $(ls "$council/inbox/processed" 2>/dev/null | tr '\n' ' ')"
echo
echo "-- what reached the voluntary organisations (signed webhooks):"
grep 'referral in' "$tmp/voluntary-sim.log" | sed 's/^voluntary-sim: /  /' ||
  { echo "  (nothing arrived)"; demo_status=1; }
echo
echo "-- the adapters' logs:"
for pid in nursing_pid gp_pid social_pid vol_pid sim_pid gpsim_pid csim_pid \
           vsim_pid; do
  stop_pid "${!pid}"
  printf -v "$pid" '%s' ''
done
grep -hE ' (accepted|refused|delivered|settled|duplicate|published) ' \
  "$tmp/nursing.log" "$tmp/gp.log" "$tmp/social.log" "$tmp/voluntary.log" |
  sed 's/^[^ ]* handover-/  /' | head -n 40

heading "an auditor traces a patient (handover-audit trace --nhs 9995050501)"
"$build/handover-audit" trace --data "$tmp/data" --auditor demo \
  --nhs 9995050501 | sed 's/^/  /' || demo_status=1

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

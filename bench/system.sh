# shellcheck shell=bash
# bench/system.sh -- sourced by bench/soak.sh and bench/peak.sh: start the
# whole system (handover-hub with CURVE, the four adapters, the four
# partner simulators) the way scripts/demo.sh does, on its own ports, in
# one mktemp -d folder; stop it and remove the folder on exit.
#
# Ports (environment): LOAD_HUB_PORT (7600), LOAD_FHIR_PORT (7610),
# LOAD_GP_SIM_PORT (7611), LOAD_MLLP_PORT (7620), LOAD_NURSING_SIM_PORT
# (7621), LOAD_WEBHOOK_PORT (7640), LOAD_VOLUNTARY_SIM_PORT (7641).
# BUILD_DIR: where the binaries are (default build/).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO/build}
BUILD_DIR=$(cd "$BUILD_DIR" 2>/dev/null && pwd) || {
  echo "FAILED: BUILD_DIR ${BUILD_DIR} does not exist" >&2; exit 1; }
HUB_PORT=${LOAD_HUB_PORT:-7600}
FHIR_PORT=${LOAD_FHIR_PORT:-7610}
GPSIM_PORT=${LOAD_GP_SIM_PORT:-7611}
MLLP_PORT=${LOAD_MLLP_PORT:-7620}
NSIM_PORT=${LOAD_NURSING_SIM_PORT:-7621}
HOOK_PORT=${LOAD_WEBHOOK_PORT:-7640}
VSIM_PORT=${LOAD_VOLUNTARY_SIM_PORT:-7641}
ENDPOINT=tcp://127.0.0.1:$HUB_PORT
START_LIMIT_S=${START_LIMIT_S:-20}

SYS_TMP=
declare -A PID    # name -> pid

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_bins() {
  local b
  for b in handover-hub handover-ctl handover-nursing handover-gp \
           handover-social handover-voluntary nursing-sim gp-sim council-sim \
           voluntary-sim handover-load; do
    [[ -x $BUILD_DIR/$b ]] || die "$BUILD_DIR/$b is missing; build it: cmake --build $BUILD_DIR -j2"
  done
}

# stop_one PID: SIGTERM, up to 15 s, then SIGKILL.
stop_one() {
  local p=$1 i
  alive "$p" || { wait "$p" 2>/dev/null || true; return 0; }
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    alive "$p" || break
    sleep 0.1
  done
  if alive "$p"; then
    log "pid $p did not stop within 15 s of SIGTERM: killing it"
    kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}

# Adapters first (they settle what they hold), then simulators, then the hub.
stop_system() {
  local n
  for n in nursing gp social voluntary nursing-sim gp-sim council-sim voluntary-sim hub; do
    [[ -n ${PID[$n]:-} ]] && stop_one "${PID[$n]}"
    PID[$n]=
  done
}

# wait_log FILE TEXT PID NAME
wait_log() {
  local i
  for ((i = 0; i < START_LIMIT_S * 10; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    alive "$3" || { tail -n 20 "$1" >&2 || true; die "$4 exited during startup (log above)"; }
    sleep 0.1
  done
  tail -n 20 "$1" >&2 || true
  die "$4 did not log '$2' within ${START_LIMIT_S} s"
}

# start_system DIR [council-sim interval ms]: everything under DIR.
start_system() {
  local d=$1 interval=${2:-100} p a
  SYS_TMP=$d
  for p in "$HUB_PORT" "$FHIR_PORT" "$GPSIM_PORT" "$MLLP_PORT" "$NSIM_PORT" \
           "$HOOK_PORT" "$VSIM_PORT"; do
    port_busy "$p" && die "127.0.0.1:$p is busy; pick free ports with LOAD_*_PORT (see bench/README.md)"
  done
  mkdir -p "$d/keys" "$d/council/inbox" "$d/council/outbox"
  chmod 700 "$d/keys"
  declare -gA PUB
  for a in hub gp nursing social voluntary; do
    PUB[$a]=$("$BUILD_DIR/handover-ctl" keygen "$a" --dir "$d/keys")
  done
  {
    "$BUILD_DIR/handover-hub" --print-default-config
    echo "curve:"
    echo "  secret_key_file: $d/keys/hub.key"
    echo "  clients:"
    for a in gp nursing social voluntary; do
      echo "    - {name: $a-load, agency: $a, public_key: '${PUB[$a]}'}"
    done
  } >"$d/hub.yaml"
  SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (umask 077
   for org in local:VCS-0001 local:VCS-0002 local:VCS-0003; do
     echo "$org - ${org#local:}-load $SECRET"
   done >"$d/voluntary-orgs")

  "$BUILD_DIR/handover-hub" --config "$d/hub.yaml" --data "$d/data" \
    --endpoint "$ENDPOINT" </dev/null >"$d/hub.out" 2>"$d/hub.log" &
  PID[hub]=$!
  wait_log "$d/hub.log" ' ready endpoint=' "${PID[hub]}" handover-hub

  "$BUILD_DIR/nursing-sim" serve --port "$NSIM_PORT" --log "$d/nursing-sim.deliveries" \
    </dev/null >"$d/nursing-sim.log" 2>&1 &
  PID[nursing-sim]=$!
  "$BUILD_DIR/gp-sim" serve --port "$GPSIM_PORT" --log "$d/gp-sim.deliveries" \
    </dev/null >"$d/gp-sim.log" 2>&1 &
  PID[gp-sim]=$!
  "$BUILD_DIR/council-sim" take --outbox "$d/council/outbox" \
    --taken "$d/council/taken" --interval-ms "$interval" \
    </dev/null >"$d/council-sim.log" 2>&1 &
  PID[council-sim]=$!
  "$BUILD_DIR/voluntary-sim" serve --port "$VSIM_PORT" --secret "$SECRET" \
    --log "$d/voluntary-sim.deliveries" </dev/null >"$d/voluntary-sim.log" 2>&1 &
  PID[voluntary-sim]=$!

  local curve=(--set "hub.endpoint=$ENDPOINT" --set "hub.curve_server_key=${PUB[hub]}")
  "$BUILD_DIR/handover-nursing" "${curve[@]}" --set "hub.curve_key_file=$d/keys/nursing.key" \
    --set "listen.port=$MLLP_PORT" --set "partner.port=$NSIM_PORT" \
    </dev/null 2>"$d/nursing.log" &
  PID[nursing]=$!
  "$BUILD_DIR/handover-gp" "${curve[@]}" --set "hub.curve_key_file=$d/keys/gp.key" \
    --set "listen.port=$FHIR_PORT" --set "partner.url=http://127.0.0.1:$GPSIM_PORT/fhir" \
    </dev/null 2>"$d/gp.log" &
  PID[gp]=$!
  "$BUILD_DIR/handover-social" "${curve[@]}" --set "hub.curve_key_file=$d/keys/social.key" \
    --set "files.inbox=$d/council/inbox" --set "files.outbox=$d/council/outbox" \
    --set files.scan_interval_ms=500 </dev/null 2>"$d/social.log" &
  PID[social]=$!
  "$BUILD_DIR/handover-voluntary" "${curve[@]}" --set "hub.curve_key_file=$d/keys/voluntary.key" \
    --set "listen.port=$HOOK_PORT" --set "partner.orgs_file=$d/voluntary-orgs" \
    --set "partner.default_url=http://127.0.0.1:$VSIM_PORT/handover/v1/referrals" \
    </dev/null 2>"$d/voluntary.log" &
  PID[voluntary]=$!
  for a in nursing gp social voluntary; do
    wait_log "$d/$a.log" 'hub up' "${PID[$a]}" "handover-$a"
  done
  wait_log "$d/nursing-sim.log" 'listens' "${PID[nursing-sim]}" nursing-sim
  wait_log "$d/gp-sim.log" 'listens' "${PID[gp-sim]}" gp-sim
  wait_log "$d/voluntary-sim.log" 'listens' "${PID[voluntary-sim]}" voluntary-sim
  wait_log "$d/council-sim.log" 'watching' "${PID[council-sim]}" council-sim
  # the MLLP and HTTP listeners must be up before the first message
  for p in "$MLLP_PORT" "$FHIR_PORT" "$HOOK_PORT"; do
    for ((a = 0; a < 100; a++)); do port_busy "$p" && break; sleep 0.1; done
    port_busy "$p" || die "nothing listens on 127.0.0.1:$p"
  done
}

check_system_alive() {
  local n
  for n in hub nursing gp social voluntary nursing-sim gp-sim council-sim voluntary-sim; do
    alive "${PID[$n]:-}" || { tail -n 20 "$SYS_TMP/$n.log" >&2 2>/dev/null || true; die "$n (pid ${PID[$n]:-?}) is no longer running"; }
  done
}

# The handover-load arguments that point it at this system.
load_args() {
  printf '%s\n' --samples "$REPO/samples" --mllp-port "$MLLP_PORT" \
    --fhir-port "$FHIR_PORT" --webhook-port "$HOOK_PORT" \
    --inbox "$SYS_TMP/council/inbox" --secret "$SECRET" \
    --nursing-log "$SYS_TMP/nursing-sim.deliveries" \
    --gp-log "$SYS_TMP/gp-sim.deliveries" \
    --voluntary-log "$SYS_TMP/voluntary-sim.deliveries" \
    --council-log "$SYS_TMP/council-sim.log"
}

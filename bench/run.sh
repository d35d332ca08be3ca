#!/usr/bin/env bash
# bench/run.sh -- run Handover's benchmark and the two peer brokers (RabbitMQ,
# NATS JetStream) side by side in ONE run, interleaved, and print a markdown
# table of medians plus the Handover/peer ratios. See bench/README.md.
#
# Usage: bash bench/run.sh [-n N] [-r R] [--only hub|peers] [--rss-run N]
#                          [--out FILE] [--rebuild]
#
# Everything it starts (rabbitmq-server, epmd, nats-server, handover-hub) listens
# on 127.0.0.1 only, keeps its state in one mktemp -d folder, and is stopped and
# removed when the script exits, whether it succeeds or fails. Needs root only
# when packages are missing (apt-get). No systemd is used or needed.
set -euo pipefail

PROG=bench/run.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$REPO/../shared/peers}
BUILD_DIR=${BUILD_DIR:-$REPO/build}
CMDLINE="bash bench/run.sh"
for a in "$@"; do CMDLINE+=" $(printf '%q' "$a")"; done
export LC_ALL=C

N=50000            # messages per run
R=3                # runs per system
SIZE=1024          # message size (the peers' figures are for 1 KiB)
WINDOW=1000        # confirms in flight (compiled into the peers)
ONLY=all           # all | hub | peers
RSS_RUN=0          # extra single hub run of this many messages, 0 = none
LAT_WINDOW=0       # extra hub run with this many confirms in flight, 0 = none
OUT=
REBUILD=0
HUB_ENDPOINT=tcp://127.0.0.1:7499
HUB_PORT=7499
RABBIT_PORT=5672
NATS_PORT=4222
EPMD_PORT=4369
RABBIT_START_TIMEOUT=${RABBIT_START_TIMEOUT:-120}
NATS_START_TIMEOUT=${NATS_START_TIMEOUT:-30}
HUB_START_TIMEOUT=${HUB_START_TIMEOUT:-30}

usage() {
  cat <<EOF
Usage: bash bench/run.sh [options]
  -n N            messages per run (default $N), ${SIZE}-byte messages, window $WINDOW
  -r R            runs per system, interleaved hub,rabbit,nats,... (default $R)
  --only hub|peers  run only Handover's hub, or only the two peers
  --rss-run N     one extra hub run of N messages reporting RSS first/max/last
  --latency-window W  in each round, one more hub run of N messages with W
                  confirms in flight, for publish-to-Ack latency at a
                  moderate load (medians over the R rounds)
  --out FILE      also write the report (markdown) to FILE
  --rebuild       run 'cmake --build' for handover-hub and hub-bench first
  -h, --help      this text
Environment: PEERS_DIR (default ../shared/peers), BUILD_DIR (default build/),
  RABBIT_START_TIMEOUT, NATS_START_TIMEOUT, HUB_START_TIMEOUT (seconds),
  BENCH_TIMEOUT (seconds per bench program run; default 60 + N/200).
EOF
}

log() { printf '[bench] %s\n' "$*" >&2; }
warn() { printf '[bench] WARNING: %s\n' "$*" >&2; }
die() { printf '\n%s: FAILED: %s\n' "$PROG" "$*" >&2; exit 1; }
is_uint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

while (($#)); do
  case $1 in
    -n) [[ $# -ge 2 ]] && is_uint "$2" || die "-n needs a positive integer"; N=$2; shift 2 ;;
    -r) [[ $# -ge 2 ]] && is_uint "$2" || die "-r needs a positive integer"; R=$2; shift 2 ;;
    --only) [[ $# -ge 2 && ($2 == hub || $2 == peers) ]] || die "--only takes 'hub' or 'peers'"
            ONLY=$2; shift 2 ;;
    --rss-run) [[ $# -ge 2 ]] && is_uint "$2" || die "--rss-run needs a positive integer"
               RSS_RUN=$2; shift 2 ;;
    --latency-window) [[ $# -ge 2 ]] && is_uint "$2" || die "--latency-window needs a positive integer"
               LAT_WINDOW=$2; shift 2 ;;
    --out) [[ $# -ge 2 && -n $2 ]] || die "--out needs a file name"; OUT=$2; shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
RUN_HUB=0; RUN_PEERS=0
[[ $ONLY == all || $ONLY == hub ]] && RUN_HUB=1
[[ $ONLY == all || $ONLY == peers ]] && RUN_PEERS=1
((RSS_RUN == 0 || RUN_HUB)) || die "--rss-run needs the hub (drop --only peers)"
BENCH_TIMEOUT=${BENCH_TIMEOUT:-$((60 + N / 200))}
RSS_TIMEOUT=$((60 + RSS_RUN / 200))
if [[ -n $OUT ]]; then
  [[ $OUT == /* ]] || OUT=$PWD/$OUT
  [[ -d $(dirname "$OUT") && -w $(dirname "$OUT") ]] || die "--out: cannot write into $(dirname "$OUT")"
fi

# ---------------------------------------------------------------------------
# cleanup: stop everything we started (and only that), remove the temp folder
# ---------------------------------------------------------------------------
TMP=
POLICY_RC_CREATED=0
CUR_CHILD=        # foreground bench program (run in background + wait)
SAMPLER_PID=
HUB_PID=
RABBIT_PID=       # leader of its own session/process group (setsid)
RABBIT_NODE=
EPMD_PID=         # only set if we started epmd ourselves
NATS_PID=

alive() { # pid -> true if running and not a zombie
  local s
  s=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $s && $s != Z ]]
}
wait_gone() { # pid seconds -> true if the process ended in time
  local pid=$1 end=$((SECONDS + $2))
  while alive "$pid"; do ((SECONDS < end)) || return 1; sleep 0.2; done
}
stop_proc() { # pid seconds [group]: TERM (the whole process group if asked), then KILL
  local pid=$1 secs=$2 grp=${3:-} target=$1
  [[ -n $pid ]] || return 0
  [[ -n $grp ]] && target=-$pid
  if alive "$pid"; then
    kill -TERM -- "$target" 2>/dev/null || true
    if ! wait_gone "$pid" "$secs"; then
      warn "pid $pid did not stop within ${secs}s after SIGTERM; sending SIGKILL"
      kill -KILL -- "$target" 2>/dev/null || true
      wait_gone "$pid" 5 || true
    fi
  fi
  [[ -n $grp ]] && kill -KILL -- "-$pid" 2>/dev/null || true   # stragglers in the group
  wait "$pid" 2>/dev/null || true
}

rabbitmqctl_() { # our own node, our own cookie (never the /usr/sbin wrapper: it su's to 'rabbitmq' and resets HOME)
  env "${RABBIT_ENV[@]}" timeout 60 /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" "$@"
}

cleanup() {
  local rc=$?
  set +e
  trap - INT TERM HUP
  [[ -n $CUR_CHILD ]] && { kill -TERM "$CUR_CHILD" 2>/dev/null; wait_gone "$CUR_CHILD" 15 || kill -KILL "$CUR_CHILD" 2>/dev/null; wait "$CUR_CHILD" 2>/dev/null; }
  [[ -n $SAMPLER_PID ]] && { kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; }
  [[ -n $HUB_PID ]] && stop_proc "$HUB_PID" 15
  if [[ -n $RABBIT_PID ]]; then
    if alive "$RABBIT_PID"; then
      log "stopping rabbitmq-server"
      rabbitmqctl_ stop >/dev/null 2>&1
      wait_gone "$RABBIT_PID" 30
    fi
    stop_proc "$RABBIT_PID" 20 group
  fi
  [[ -n $EPMD_PID ]] && stop_proc "$EPMD_PID" 5
  if [[ -n $NATS_PID ]]; then log "stopping nats-server"; stop_proc "$NATS_PID" 20; fi
  ((POLICY_RC_CREATED)) && rm -f /usr/sbin/policy-rc.d
  [[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"
  ((rc == 0)) || printf '%s: exit status %d; everything it started has been stopped and %s removed.\n' "$PROG" "$rc" "${TMP:-its temp folder}" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------
# 1. packages
# ---------------------------------------------------------------------------
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }
apt_install() {
  local need=() p
  for p in "$@"; do installed "$p" || need+=("$p"); done
  ((${#need[@]})) || return 0
  ((EUID == 0)) || die "missing packages (${need[*]}) and not root: run as root or install them"
  command -v apt-get >/dev/null || die "missing packages (${need[*]}) and no apt-get"
  # On a machine without systemd, the packages' postinst would start a
  # system-wide rabbitmq-server (listening on all interfaces) through
  # /etc/init.d unless a policy-rc.d says no. Deny service starts while we
  # install, if nobody has set a policy yet.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from Handover bench/run.sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  log "installing: ${need[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
    || die "apt-get install ${need[*]} failed"
  if ((POLICY_RC_CREATED)); then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
}

if ((RUN_PEERS)); then
  apt_install rabbitmq-server nats-server librabbitmq-dev libnats-dev gcc libc6-dev procps
else
  apt_install procps
fi

# ---------------------------------------------------------------------------
# 2. build: the peers (always, it takes a second) and, if missing, the hub
# ---------------------------------------------------------------------------
PEER_BIN=$BUILD_DIR/bench-peers
if ((RUN_PEERS)); then
  [[ -f $PEERS_DIR/rabbit_bench.c && -f $PEERS_DIR/nats_bench.c ]] \
    || die "peer sources not found in PEERS_DIR=$PEERS_DIR (expected rabbit_bench.c, nats_bench.c)"
  mkdir -p "$PEER_BIN"
  log "building peers from $PEERS_DIR into $PEER_BIN"
  cc -O2 "$PEERS_DIR/rabbit_bench.c" -o "$PEER_BIN/rabbit_bench" -lrabbitmq -lpthread \
    || die "building rabbit_bench failed"
  cc -O2 "$PEERS_DIR/nats_bench.c" -o "$PEER_BIN/nats_bench" -lnats -lpthread \
    || die "building nats_bench failed"
fi

HUB_BIN=$BUILD_DIR/handover-hub
HUB_BENCH=$BUILD_DIR/hub-bench
BUILD_NOTE=
if ((RUN_HUB)); then
  if [[ ! -d $BUILD_DIR ]]; then
    if [[ -f $REPO/scripts/install-deps.sh ]]; then
      log "no build dir: installing Handover's build deps (scripts/install-deps.sh)"
      bash "$REPO/scripts/install-deps.sh" >&2 || die "scripts/install-deps.sh failed"
    else
      warn "no build dir and no scripts/install-deps.sh: assuming build deps are installed"
    fi
    command -v cmake >/dev/null || die "cmake not found: cannot build Handover"
    log "configuring $BUILD_DIR"
    cmake -S "$REPO" -B "$BUILD_DIR" >&2 || die "cmake configure failed"
  fi
  if ((REBUILD)) || [[ ! -x $HUB_BIN || ! -x $HUB_BENCH ]]; then
    log "building handover-hub and hub-bench"
    cmake --build "$BUILD_DIR" --target handover-hub hub-bench -j "$(nproc)" >&2 \
      || die "building handover-hub / hub-bench failed (cmake --build $BUILD_DIR --target handover-hub hub-bench)"
  fi
  stale=$(cd "$REPO" && find hub lib include proto bench/hub_bench.c CMakeLists.txt -newer "$HUB_BIN" -type f 2>/dev/null | awk 'NR <= 3 { printf "%s ", $0 }') || true
  [[ -z $stale ]] || warn "sources newer than $HUB_BIN ($stale...): pass --rebuild to measure the current code"
  if [[ -f $BUILD_DIR/CMakeCache.txt ]]; then
    btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
    san=$(sed -n 's/^HANDOVER_SANITIZE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
    BUILD_NOTE="build type ${btype:-?}, sanitizers ${san:-?}"
    [[ $btype == Debug || $san == ON ]] && warn "hub built as $BUILD_NOTE: figures are not representative"
  fi
fi

# ---------------------------------------------------------------------------
# helpers: ports, bounded runs
# ---------------------------------------------------------------------------
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
require_free_port() { # port what
  ! port_open "$1" || die "127.0.0.1:$1 is already in use ($2?). This script starts its own throwaway $2 and will not benchmark someone else's; stop it first."
}
tail_log() { # file title
  [[ -s $1 ]] || { printf -- '--- %s: (empty)\n' "$2" >&2; return 0; }
  printf -- '--- last lines of %s:\n' "$2" >&2; tail -n 25 "$1" >&2; printf -- '---\n' >&2
}
run_bounded() { # seconds outfile errfile cmd... ; interruptible by our traps
  local secs=$1 out=$2 err=$3 rc=0; shift 3
  timeout --kill-after=10 "$secs" "$@" >"$out" 2>"$err" &
  CUR_CHILD=$!
  wait "$CUR_CHILD" || rc=$?
  CUR_CHILD=
  return "$rc"
}

TMP=$(mktemp -d -t handover-bench.XXXXXX)
log "state folder: $TMP (removed at exit)"

# ---------------------------------------------------------------------------
# 3. RabbitMQ and NATS JetStream on loopback, state in $TMP
# ---------------------------------------------------------------------------
RMQ=$TMP/rabbit
RABBIT_ENV=()
set_rabbit_env() { # everything in $RMQ, loopback only, our own node name and cookie (HOME)
  RABBIT_ENV=(
    HOME="$RMQ/home"
    RABBITMQ_NODENAME="$RABBIT_NODE"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$RABBIT_PORT"
    RABBITMQ_DIST_PORT="$((RABBIT_PORT + 20000))"
    RABBITMQ_CONF_ENV_FILE="$RMQ/rabbitmq-env.conf"
    RABBITMQ_CONFIG_FILE="$RMQ/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$RMQ/mnesia"
    RABBITMQ_LOG_BASE="$RMQ/log"
    RABBITMQ_PID_FILE="$RMQ/rabbit.pid"
    ERL_CRASH_DUMP="$RMQ/erl_crash.dump"
    ERL_EPMD_ADDRESS=127.0.0.1
    ERL_EPMD_PORT="$EPMD_PORT"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
    RABBITMQ_CTL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
  )
}

start_rabbit() {
  local srv=/usr/lib/rabbitmq/bin/rabbitmq-server
  [[ -x $srv ]] || die "$srv not found (is rabbitmq-server installed?)"
  require_free_port $RABBIT_PORT RabbitMQ
  require_free_port $((RABBIT_PORT + 20000)) "RabbitMQ (Erlang distribution)"
  RABBIT_NODE="handover-bench-$$@localhost"
  set_rabbit_env
  mkdir -p "$RMQ/home" "$RMQ/mnesia" "$RMQ/log"
  : > "$RMQ/rabbitmq-env.conf"            # do not read /etc/rabbitmq/rabbitmq-env.conf
  printf '[].\n' > "$RMQ/enabled_plugins" # no plugins (management would listen on 0.0.0.0:15672)
  cat > "$RMQ/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$RABBIT_PORT
loopback_users.guest = true
EOF
  # epmd: erl would start one with -daemon (detached, it would outlive us);
  # run our own in the foreground instead unless one is already there.
  if ! port_open $EPMD_PORT; then
    local epmd
    epmd=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -1) || true
    [[ -n $epmd ]] || die "epmd not found (erlang-base)"
    setsid "$epmd" -address 127.0.0.1 -port $EPMD_PORT </dev/null >"$RMQ/epmd.log" 2>&1 &
    EPMD_PID=$!
    local end=$((SECONDS + 10))
    until port_open $EPMD_PORT; do
      alive "$EPMD_PID" || { tail_log "$RMQ/epmd.log" epmd; die "epmd exited at start"; }
      ((SECONDS < end)) || die "epmd did not listen on 127.0.0.1:$EPMD_PORT within 10s"
      sleep 0.1
    done
  else
    log "reusing the epmd already listening on 127.0.0.1:$EPMD_PORT"
  fi
  log "starting rabbitmq-server (node $RABBIT_NODE, 127.0.0.1:$RABBIT_PORT)"
  (cd "$RMQ" && exec setsid env "${RABBIT_ENV[@]}" "$srv") </dev/null >"$RMQ/stdout.log" 2>&1 &
  RABBIT_PID=$!
  local end=$((SECONDS + RABBIT_START_TIMEOUT))
  until port_open $RABBIT_PORT; do
    if ! alive "$RABBIT_PID"; then
      tail_log "$RMQ/stdout.log" "rabbitmq-server output"
      tail_log "$(ls "$RMQ"/log/*.log 2>/dev/null | head -1)" "rabbitmq log"
      die "rabbitmq-server exited during startup"
    fi
    if ((SECONDS >= end)); then
      tail_log "$RMQ/stdout.log" "rabbitmq-server output"
      die "rabbitmq-server did not listen on 127.0.0.1:$RABBIT_PORT within ${RABBIT_START_TIMEOUT}s"
    fi
    sleep 0.5
  done
  if ! rabbitmqctl_ await_startup >"$RMQ/await.log" 2>&1; then
    tail_log "$RMQ/await.log" "rabbitmqctl await_startup"
    die "rabbitmq-server answers on $RABBIT_PORT but 'rabbitmqctl await_startup' failed"
  fi
  log "rabbitmq-server ready"
}

start_nats() {
  command -v nats-server >/dev/null || die "nats-server not found"
  require_free_port $NATS_PORT "NATS server"
  mkdir -p "$TMP/nats"
  log "starting nats-server -js (127.0.0.1:$NATS_PORT)"
  setsid nats-server -js -a 127.0.0.1 -p $NATS_PORT -sd "$TMP/nats" </dev/null >"$TMP/nats.log" 2>&1 &
  NATS_PID=$!
  local end=$((SECONDS + NATS_START_TIMEOUT))
  until port_open $NATS_PORT; do
    alive "$NATS_PID" || { tail_log "$TMP/nats.log" nats-server; die "nats-server exited during startup"; }
    ((SECONDS < end)) || { tail_log "$TMP/nats.log" nats-server; die "nats-server did not listen on 127.0.0.1:$NATS_PORT within ${NATS_START_TIMEOUT}s"; }
    sleep 0.2
  done
  log "nats-server ready"
}

# all ports first, so a busy one fails before anything was started
if ((RUN_PEERS)); then
  require_free_port $RABBIT_PORT RabbitMQ
  require_free_port $((RABBIT_PORT + 20000)) "RabbitMQ (Erlang distribution)"
  require_free_port $NATS_PORT "NATS server"
fi
((RUN_HUB)) && require_free_port $HUB_PORT "Handover hub"
# Each system has the machine to itself while it runs: an idle Erlang VM
# spins its schedulers and would take CPU from whichever system runs beside
# it on two cores. So each peer server is started for its own run and
# stopped after it; the runs still alternate, so drift hits all equally.
stop_rabbit() {
  [[ -n $RABBIT_PID ]] || return 0
  if alive "$RABBIT_PID"; then
    rabbitmqctl_ stop >/dev/null 2>&1
    wait_gone "$RABBIT_PID" 30
  fi
  stop_proc "$RABBIT_PID" 20 group
  RABBIT_PID=
}
stop_nats() {
  [[ -n $NATS_PID ]] || return 0
  stop_proc "$NATS_PID" 20
  NATS_PID=
}

# ---------------------------------------------------------------------------
# 4./5. bench runs
# ---------------------------------------------------------------------------
RESULTS=$TMP/results.tsv   # system run confirmed e2e p50 p99 label ack-p50 ack-p99
RAW=$TMP/raw.txt
PEER_RETRIES=()
RSSLOG=$TMP/rss.txt
: > "$RESULTS"; : > "$RAW"; : > "$RSSLOG"
NUM='([0-9]+(\.[0-9]+)?)'

# parse_line system run line expected_n -> appends to $RESULTS, or fails with a message
parse_line() {
  local sys=$1 run=$2 line=$3 n=$4 conf e2e p50 p99 label ack50 ack99
  [[ $line =~ ^([^:]*):\ ([0-9]+)\ msgs ]] || { echo "no '<label>: N msgs' prefix"; return 1; }
  label=${BASH_REMATCH[1]}
  [[ ${BASH_REMATCH[2]} == "$n" ]] || { echo "ran ${BASH_REMATCH[2]} msgs, expected $n"; return 1; }
  [[ $line =~ confirmed\ $NUM\ msg/s ]] || { echo "no 'confirmed X msg/s'"; return 1; }
  conf=${BASH_REMATCH[1]}
  [[ $line =~ end-to-end\ $NUM\ msg/s ]] || { echo "no 'end-to-end X msg/s'"; return 1; }
  e2e=${BASH_REMATCH[1]}
  [[ $line =~ latency\ p50\ $NUM\ ms\ p99\ $NUM\ ms ]] || { echo "no 'latency p50 X ms p99 Y ms'"; return 1; }
  p50=${BASH_REMATCH[1]}; p99=${BASH_REMATCH[3]}
  ack50=; ack99=
  if [[ $line =~ ack\ p50\ $NUM\ ms\ p99\ $NUM\ ms ]]; then ack50=${BASH_REMATCH[1]}; ack99=${BASH_REMATCH[3]}; fi
  if [[ $line =~ \(([0-9]+)\ pub\ acks,\ ([0-9]+)\ errors\) ]]; then
    [[ ${BASH_REMATCH[2]} == 0 && ${BASH_REMATCH[1]} == "$n" ]] \
      || { echo "only ${BASH_REMATCH[1]} of $n publishes confirmed, ${BASH_REMATCH[2]} errors"; return 1; }
  fi
  awk -v c="$conf" 'BEGIN { exit !(c > 0) }' || { echo "confirmed throughput is 0 (not every message was confirmed)"; return 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$run" "$conf" "$e2e" "$p50" "$p99" "$label" "$ack50" "$ack99" >> "$RESULTS"
}

# run_peer system binary run
run_peer() {
  local sys=$1 bin=$2 run=$3 out=$TMP/$1-$3.out err=$TMP/$1-$3.err rc=0 line why
  local srv_pid=$RABBIT_PID srv_log=$RMQ/stdout.log
  [[ $sys == nats ]] && { srv_pid=$NATS_PID; srv_log=$TMP/nats.log; }
  alive "$srv_pid" || { tail_log "$srv_log" "$sys server"; die "$sys server is no longer running (before run $run)"; }
  log "run $run/$R: $sys ($(basename "$bin") $N $SIZE)"
  run_bounded "$BENCH_TIMEOUT" "$out" "$err" "$bin" "$N" "$SIZE" || rc=$?
  # A peer's own program killed by a signal of its own making (abort,
  # segfault: seen once from nats_bench, "corrupted double-linked list")
  # is not the server's result: run it once more, and say so in the report.
  if ((rc == 134 || rc == 139)) && alive "$srv_pid"; then
    warn "$(basename "$bin") crashed with exit status $rc (run $run): $(tail -n 1 "$err" 2>/dev/null); running it once more"
    PEER_RETRIES+=("$(basename "$bin") run $run: exit status $rc ($(tail -n 1 "$err" 2>/dev/null)), run again")
    rc=0
    run_bounded "$BENCH_TIMEOUT" "$out" "$err" "$bin" "$N" "$SIZE" || rc=$?
  fi
  if ((rc != 0)); then
    tail_log "$err" "$(basename "$bin") stderr"
    ((rc == 124 || rc == 137)) && die "$(basename "$bin") timed out after ${BENCH_TIMEOUT}s (run $run); set BENCH_TIMEOUT to allow longer"
    if ! alive "$srv_pid"; then
      tail_log "$srv_log" "$sys server"
      die "$(basename "$bin") failed with exit status $rc (run $run): the $sys server died during the run"
    fi
    die "$(basename "$bin") failed with exit status $rc (run $run)"
  fi
  line=$(grep 'confirmed .* msg/s' "$out" | tail -n 1) || true
  [[ -n $line ]] || { tail_log "$out" "$(basename "$bin") stdout"; die "$(basename "$bin") printed no result line (run $run)"; }
  why=$(parse_line "$sys" "$run" "$line" "$N") || die "cannot use $(basename "$bin")'s line ($why): $line"
  printf '%s\n' "$line" >> "$RAW"
  log "  $line"
}

placeholder_hint() { # why the hub half may not work yet
  local f ph=()
  for f in hub/main.c bench/hub_bench.c; do
    grep -qs placeholder "$REPO/$f" && ph+=("$f")
  done
  if ((${#ph[@]})); then
    local what="is still a placeholder that exits"
    ((${#ph[@]} > 1)) && what="are still placeholders that exit"
    printf '\n  %s %s 1: the hub half works once the real handover-hub and hub-bench are built (cmake --build %s --target handover-hub hub-bench)' \
      "${ph[*]}" "$what" "$BUILD_DIR"
  elif [[ -n ${stale:-} ]]; then
    printf '\n  note: %s is older than its sources; try --rebuild' "$BUILD_DIR"
  fi
}

# run_hub tag n timeout [display] -> appends result (unless tag is 'rss') and RSS summary
HUB_LINE=
run_hub() {
  local tag=$1 n=$2 tmo=$3 disp=${4:-$1} data=$TMP/hub-$1 err=$TMP/hub-$1.err rss=$TMP/hub-$1.rss
  local out=$TMP/hubbench-$1.out berr=$TMP/hubbench-$1.err rc=0 line why end
  [[ -x $HUB_BIN ]] || die "$HUB_BIN not found or not executable; build it: cmake --build $BUILD_DIR --target handover-hub"
  [[ -x $HUB_BENCH ]] || die "$HUB_BENCH not found or not executable; build it: cmake --build $BUILD_DIR --target hub-bench"
  require_free_port $HUB_PORT "Handover hub"
  rm -rf "$data"; mkdir -p "$data"
  log "run $disp: handover-hub --data $data --endpoint $HUB_ENDPOINT"
  setsid "$HUB_BIN" --data "$data" --endpoint "$HUB_ENDPOINT" </dev/null >"$TMP/hub-$tag.out" 2>"$err" &
  HUB_PID=$!
  end=$((SECONDS + HUB_START_TIMEOUT))
  # a word match: "Address already in use" must not count as "ready"
  until grep -qiw ready "$err" 2>/dev/null; do
    if ! alive "$HUB_PID"; then
      rc=0; wait "$HUB_PID" || rc=$?; HUB_PID=
      tail_log "$err" "handover-hub stderr"
      die "handover-hub exited with status $rc before printing 'ready' (run $disp)$(placeholder_hint)"
    fi
    ((SECONDS < end)) || { tail_log "$err" "handover-hub stderr"; die "handover-hub printed no 'ready' line within ${HUB_START_TIMEOUT}s (run $disp)"; }
    sleep 0.1
  done
  # RSS sampler: RssAnon (kB), the hub's private memory, once a second
  # while the hub runs. VmRSS also counts the pages of the memory-mapped
  # LMDB file that the hub has touched, which grow with the events kept and
  # say nothing about leaks; RssAnon is what would grow if memory leaked.
  ( while :; do
      v=$(awk '/^RssAnon:/ { print $2; exit }' "/proc/$HUB_PID/status" 2>/dev/null) || true
      [[ -n $v ]] && printf '%s\n' "$v"
      sleep 1
    done ) > "$rss" &
  SAMPLER_PID=$!
  log "run $disp: hub-bench --endpoint $HUB_ENDPOINT -n $n -s $SIZE -w $WINDOW"
  run_bounded "$tmo" "$out" "$berr" "$HUB_BENCH" --endpoint "$HUB_ENDPOINT" -n "$n" -s "$SIZE" -w "$WINDOW" || rc=$?
  awk '/^RssAnon:/ { print $2; exit }' "/proc/$HUB_PID/status" >> "$rss" 2>/dev/null || true  # one last sample
  kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=
  if ! alive "$HUB_PID"; then
    local hrc=0; wait "$HUB_PID" || hrc=$?; HUB_PID=
    tail_log "$err" "handover-hub stderr"; tail_log "$berr" "hub-bench stderr"
    die "handover-hub exited with status $hrc during the benchmark (run $disp)"
  fi
  if ((rc != 0)); then
    tail_log "$berr" "hub-bench stderr"; tail_log "$out" "hub-bench stdout"
    ((rc == 124 || rc == 137)) && die "hub-bench timed out after ${tmo}s (run $disp); set BENCH_TIMEOUT to allow longer"
    die "hub-bench failed with exit status $rc (run $disp)$(placeholder_hint)"
  fi
  stop_proc "$HUB_PID" 15; HUB_PID=
  line=$(grep 'confirmed .* msg/s' "$out" | tail -n 1) || true
  [[ -n $line ]] || { tail_log "$out" "hub-bench stdout"; die "hub-bench printed no result line (run $disp)"; }
  if [[ $tag == rss ]]; then
    why=$(parse_line rss "$tag" "$line" "$n") || die "cannot use hub-bench's line ($why): $line"
  elif [[ $tag == lat* ]]; then
    why=$(parse_line lat "$tag" "$line" "$n") || die "cannot use hub-bench's line ($why): $line"
  else
    why=$(parse_line hub "$tag" "$line" "$n") || die "cannot use hub-bench's line ($why): $line"
    printf '%s\n' "$line" >> "$RAW"
  fi
  HUB_LINE=$line
  awk -v tag="$tag" -v n="$n" '
    { v = $1 + 0; if (NR == 1) first = v; if (v > max) max = v; last = v; cnt++ }
    END { if (cnt == 0) { printf "| %s | %d | n/a | n/a | n/a | 0 |\n", tag, n; exit }
          printf "| %s | %d | %.1f | %.1f | %.1f | %d |\n", tag, n, first/1024, max/1024, last/1024, cnt }' "$rss" >> "$RSSLOG"
  rm -rf "$data"
  log "  $line"
}

# Publish-to-Ack latency is window / throughput when the window is full
# (Little's law), so it is measured in runs of its own with a small window,
# one per round: one run's p99 is a handful of slow fsyncs, so the report
# gives the median over the rounds and every run's figure.
LAT_LINES=()
for ((i = 1; i <= R; i++)); do
  ((RUN_HUB)) && run_hub "$i" "$N" "$BENCH_TIMEOUT" "$i/$R"
  if ((RUN_HUB && LAT_WINDOW > 0)); then
    saved_window=$WINDOW; WINDOW=$LAT_WINDOW
    run_hub "lat$i" "$N" "$BENCH_TIMEOUT" "latency $i/$R (window $LAT_WINDOW)"
    WINDOW=$saved_window; LAT_LINES+=("$HUB_LINE")
  fi
  if ((RUN_PEERS)); then
    start_rabbit
    run_peer rabbit "$PEER_BIN/rabbit_bench" "$i"
    stop_rabbit
    start_nats
    run_peer nats "$PEER_BIN/nats_bench" "$i"
    stop_nats
  fi
done
RSS_LINE=
if ((RSS_RUN > 0)); then
  run_hub rss "$RSS_RUN" "$RSS_TIMEOUT" "rss (single run)"
  RSS_LINE=$HUB_LINE
fi

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
col() { # system column -> non-empty values, one a line
  awk -F'\t' -v s="$1" -v c="$2" '$1 == s && $c != "" { print $c }' "$RESULTS"
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { col "$1" "$2" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2fx", a / b }'; }
fmt_int() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.0f", v }'; }
fmt_ms() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.2f", v }'; }
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }

REPORT=$TMP/report.md
{
  echo "## Handover vs RabbitMQ vs NATS JetStream"
  echo
  echo "$N messages x $SIZE B per run, $WINDOW confirms in flight, one consumer, loopback; $R run(s) per system, interleaved (hub, rabbit, nats, ...), each peer server started for its own run only; medians of each column."
  echo
  echo "| system | a confirm means | confirmed msg/s | end-to-end msg/s | latency p50 ms | latency p99 ms | runs |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for sys in hub rabbit nats; do
    [[ -n $(col "$sys" 3) ]] || continue
    case $sys in
      hub)    name="Handover ($(awk -F'\t' '$1 == "hub" { print $7; exit }' "$RESULTS"))"; promise="durable LMDB commit done" ;;
      rabbit) name="RabbitMQ $(pkgver rabbitmq-server)"; promise="message store fsync'd (in batches)" ;;
      nats)   name="NATS JetStream $(pkgver nats-server)"; promise="in page cache only; fsync on a timer" ;;
    esac
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$promise" \
      "$(fmt_int "$(med "$sys" 3)")" "$(fmt_int "$(med "$sys" 4)")" \
      "$(fmt_ms "$(med "$sys" 5)")" "$(fmt_ms "$(med "$sys" 6)")" "$(col "$sys" 3 | wc -l)"
  done
  echo
  if ((RUN_HUB && RUN_PEERS)); then
    echo "Ratios of medians, confirmed throughput: **Handover/RabbitMQ = $(ratio "$(med hub 3)" "$(med rabbit 3)")**, **Handover/NATS = $(ratio "$(med hub 3)" "$(med nats 3)")**"
    echo "(end-to-end throughput: Handover/RabbitMQ = $(ratio "$(med hub 4)" "$(med rabbit 4)"), Handover/NATS = $(ratio "$(med hub 4)" "$(med nats 4)"))."
  else
    echo "Ratios: not computed (--only $ONLY ran one side only)."
  fi
  echo
  [[ -n $(col hub 8) ]] && echo "Handover publish-to-confirm (ack) latency, medians: p50 $(fmt_ms "$(med hub 8)") ms, p99 $(fmt_ms "$(med hub 9)") ms." && echo
  echo "Latency is publish-to-consume. NATS JetStream confirms promise less than the other two (no fsync before the ack), so its throughput is an upper bound for a durable comparison."
  if [[ -s $RSSLOG ]]; then
    echo
    echo "Hub private resident memory (RssAnon, sampled every second; first sample right after 'ready'; the memory-mapped LMDB file is not counted):"
    echo
    echo "| hub run | messages | first MiB | max MiB | last MiB | samples |"
    echo "|---|---:|---:|---:|---:|---:|"
    cat "$RSSLOG"
    [[ -n $RSS_LINE ]] && { echo; echo "RSS run line: \`$RSS_LINE\`"; }
  fi
  if ((${#LAT_LINES[@]})); then
    echo
    echo "Latency runs (window $LAT_WINDOW, one per round): publish-to-Ack **p99 median $(fmt_ms "$(med lat 9)") ms** (runs: $(col lat 9 | paste -sd, - | sed 's/,/, /g') ms), p50 median $(fmt_ms "$(med lat 8)") ms, at confirmed $(fmt_int "$(med lat 3)") msg/s (median):"
    echo
    echo '```'
    printf '%s\n' "${LAT_LINES[@]}"
    echo '```'
  fi
  echo
  if ((${#PEER_RETRIES[@]})); then
    echo "Peer programs that crashed and were run once more:"
    printf -- '- %s\n' "${PEER_RETRIES[@]}"
    echo
  fi
  echo "Raw lines, in run order:"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
  echo
  echo "Machine: $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true), kernel $(uname -srm), memory $(free -h 2>/dev/null | awk '/^Mem:/ { print $2 }') total, $(date '+%Y-%m-%d %H:%M:%S %Z')"
  [[ -n $BUILD_NOTE ]] && echo "Handover: $HUB_BIN ($BUILD_NOTE), git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
  ((RUN_PEERS)) && echo "Peers: rabbitmq-server $(pkgver rabbitmq-server), erlang $(pkgver erlang-base), librabbitmq $(pkgver librabbitmq-dev), nats-server $(pkgver nats-server), libnats $(pkgver libnats-dev)"
  echo "Command: \`$CMDLINE\`"
} > "$REPORT"

echo
cat "$REPORT"
if [[ -n $OUT ]]; then
  cp "$REPORT" "$OUT"
  log "report written to $OUT"
fi

#!/usr/bin/env bash
# wasmtp's copy of ../shared/bench/peers/run-peers.sh (called by bench/run.sh).
# Differences from the shared script:
#   - several gateway variants at once (GW_VARIANTS), each a peer of its own,
#     so the variants and the peers interleave in every round;
#   - the peers' configs and peerbench.py are read from PEERS_DIR (the shared
#     folder, never written to); Haraka comes from HARAKA_DIR and the results
#     go to RESULTS_DIR, both outside the shared folder;
#   - a gateway may take longer to start (Cranelift compiles its plugins):
#     START_WAIT seconds.
#
# Start smtp-sink and the peer SMTP servers on 127.0.0.1 only, run the same
# smtp-source loads against each of them, print a table, stop everything this
# script started (by PID / by its own Postfix config directory).
#
# Ports (all on 127.0.0.1): 2525 smtp-sink, 2526 qpsmtpd, 2527 Haraka,
# 2528 Postfix, 2530 Haraka with TCP_NODELAY on its forward socket; gateway
# variants on the ports GW_VARIANTS gives (2529, 2531-2599). Only ports
# 2500-2599 are used.
#
#   GW_VARIANTS="name|port|mode|command ..."   (newline-separated) gateway variants:
#                       each one is a peer named NAME, started with
#                       bash -c 'exec COMMAND' in its own folder; add NAME to PEERS
#   PEERS_DIR=../shared/bench/peers   configs of the peers and peerbench.py
#   HARAKA_DIR=DIR      where install (bench/run.sh) put Haraka's node_modules
#   RESULTS_DIR=DIR     where run-*.jsonl and run-*.txt go
#   START_WAIT=120      seconds a server may take to listen
#
# Knobs (environment variables):
#   PEERS="sink qpsmtpd haraka haraka_nodelay postfix"   which targets to run
#                       ("sink" = smtp-source straight into smtp-sink, the raw limit;
#                       add gateway variant names, see GW_VARIANTS)
#   LOADS="10:1024 50:1024 10:102400 50:102400 10:1024:reuse"
#                       sessions:payload-bytes[:reuse]; reuse = smtp-source -d
#                       (all messages over the same connections); default is a
#                       new connection per message
#   MSGS=5000           messages per run; per peer: MSGS_sink (20000),
#                       MSGS_qpsmtpd (1000, it runs at ~100 msg/s)
#   REPS=3              repetitions (rounds interleave the peers)
#   WARMUP=200          unrecorded warm-up messages after each peer starts
#   QUIET_PCT=25 QUIET_WAIT=90   before each run wait up to QUIET_WAIT s for the
#                       machine to be below QUIET_PCT % busy (other users' jobs)
#   HARAKA_NODES=0      Haraka smtp.ini nodes= (0 = single process, no cluster)
#   RUN_TIMEOUT=600     per-run limit in seconds
#   SERVE_SECONDS=N     don't run loads: start sink + peers, keep them up for N
#                       seconds (or until Ctrl-C) for manual tests, then stop them
#   PEERS_STATE=DIR     runtime folder (default: a new mktemp -d, removed at the end
#                       unless KEEP_STATE=1)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_DIR="$(cd "${PEERS_DIR:-$HERE/../../shared/bench/peers}" && pwd)"
HARAKA_DIR="${HARAKA_DIR:-$HERE/../target/bench/haraka-install}"
RESULTS_DIR="${RESULTS_DIR:-$HERE/results}"
START_WAIT="${START_WAIT:-120}"
PB="python3 $PEERS_DIR/peerbench.py"

PEERS="${PEERS:-sink qpsmtpd haraka haraka_nodelay postfix}"
LOADS="${LOADS:-10:1024 50:1024 10:102400 50:102400 10:1024:reuse}"
MSGS="${MSGS:-5000}"
MSGS_sink="${MSGS_sink:-20000}"
MSGS_qpsmtpd="${MSGS_qpsmtpd:-1000}"
REPS="${REPS:-3}"
WARMUP="${WARMUP:-200}"
QUIET_PCT="${QUIET_PCT:-25}"
QUIET_WAIT="${QUIET_WAIT:-90}"
HARAKA_NODES="${HARAKA_NODES:-0}"
RUN_TIMEOUT="${RUN_TIMEOUT:-600}"
KEEP_STATE="${KEEP_STATE:-0}"

SINK_PORT=2525 QP_PORT=2526 HARAKA_PORT=2527 PF_PORT=2528 HARAKA_ND_PORT=2530
declare -A GW_PORT=() GW_MODE=() GW_CMD=()
while IFS='|' read -r gw_name gw_port gw_mode gw_cmd; do
  [ -n "$gw_name" ] || continue
  if [ "$gw_port" -lt 2500 ] || [ "$gw_port" -gt 2599 ] || \
     [[ " $SINK_PORT $QP_PORT $HARAKA_PORT $PF_PORT $HARAKA_ND_PORT ${GW_PORT[*]} " == *" $gw_port "* ]]; then
    echo "gateway $gw_name: port $gw_port must be in 2500-2599 and not used by another peer" >&2; exit 1
  fi
  GW_PORT[$gw_name]=$gw_port GW_MODE[$gw_name]=$gw_mode GW_CMD[$gw_name]=$gw_cmd
done <<< "${GW_VARIANTS:-}"
SMTP_SINK=/usr/sbin/smtp-sink
HARAKA_BIN="$HARAKA_DIR/node_modules/Haraka/bin/haraka"

if [ "$(id -u)" = 0 ]; then
  SINK_USER_OPT=(-u nobody)
  if id qpsmtpd >/dev/null 2>&1; then QP_USER=qpsmtpd; else QP_USER=nobody; fi
else
  SINK_USER_OPT=()
  QP_USER="$(id -un)"
fi

STATE="${PEERS_STATE:-$(mktemp -d "${TMPDIR:-/tmp}/smtp-peers.XXXXXX")}"
mkdir -p "$STATE"
chmod 755 "$STATE"  # Postfix daemons (user postfix) must reach $STATE/postfix/queue
mkdir -p "$RESULTS_DIR"
STAMP="${STAMP:-$(date +%Y%m%d-%H%M%S)}"
RES="$RESULTS_DIR/run-$STAMP.jsonl"
WARM="$STATE/warmup.jsonl"
: > "$RES"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- process care
declare -A ROOT_PID=()       # peer -> root PID
STARTED=()                   # every root PID this script started, in order
PF_STARTED=0

descendants() {  # PID -> PID and all its descendants, one per line
  local p=$1 c
  echo "$p"
  for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do descendants "$c"; done
}

stop_pid() {     # stop one root PID we started, and whatever it forked
  local p=$1 all i q
  kill -0 "$p" 2>/dev/null || return 0
  all=$(descendants "$p")
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  for q in $all; do
    [ "$q" = "$p" ] && continue
    kill -0 "$q" 2>/dev/null && kill -TERM "$q" 2>/dev/null || true
  done
  wait "$p" 2>/dev/null || true
}

cleanup() {
  local rc=$? i p
  trap - EXIT INT TERM
  if [ "$PF_STARTED" = 1 ]; then
    p="${ROOT_PID[postfix]:-}"
    local pf_all=""
    [ -n "$p" ] && pf_all=$(descendants "$p")
    /usr/sbin/postfix -c "$STATE/postfix/etc" stop >/dev/null 2>&1 || true
    for i in $(seq 1 100); do [ -n "$p" ] && kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    for q in $pf_all; do kill -0 "$q" 2>/dev/null && kill -TERM "$q" 2>/dev/null || true; done
  fi
  for ((i=${#STARTED[@]}-1; i>=0; i--)); do stop_pid "${STARTED[$i]}"; done
  if [ "$KEEP_STATE" = 1 ] || [ -n "${PEERS_STATE:-}" ]; then
    log "runtime files kept in $STATE"
  else
    rm -rf "$STATE"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; }

wait_port() {    # port pid name
  local i
  for i in $(seq 1 $((START_WAIT * 10))); do
    port_busy "$1" && return 0
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "$3 did not start listening on 127.0.0.1:$1"; return 1
}

# ---------------------------------------------------------------- servers
start_sink() {
  port_busy $SINK_PORT && { log "port $SINK_PORT already in use"; exit 1; }
  ( exec "$SMTP_SINK" -c "${SINK_USER_OPT[@]}" 127.0.0.1:$SINK_PORT 1000 ) \
    > "$STATE/sink.out" 2> "$STATE/sink.err" &
  ROOT_PID[sink]=$!; STARTED+=($!)
  wait_port $SINK_PORT $! smtp-sink
  log "smtp-sink pid ${ROOT_PID[sink]} on 127.0.0.1:$SINK_PORT"
}

start_qpsmtpd() {
  local d="$STATE/qpsmtpd"
  port_busy $QP_PORT && { log "port $QP_PORT already in use"; return 1; }
  mkdir -p "$d/spool"
  cp -r "$PEERS_DIR/qpsmtpd/config" "$d/config"
  echo "$d/spool" > "$d/config/spool_dir"
  chmod -R a+rX "$d"
  [ "$(id -u)" = 0 ] && chown "$QP_USER" "$d/spool"
  chmod 700 "$d/spool"
  # BenchNoRdns: makes -H/--no-rdns actually work (see qpsmtpd/lib/BenchNoRdns.pm)
  ( cd "$d" && exec env QPSMTPD_CONFIG="$d/config" perl -Tw -I "$PEERS_DIR/qpsmtpd/lib" \
      -MBenchNoRdns /usr/bin/qpsmtpd-forkserver -l 127.0.0.1 -p $QP_PORT \
      -c 200 -m 200 -H -u "$QP_USER" ) > "$d/log" 2>&1 &
  ROOT_PID[qpsmtpd]=$!; STARTED+=($!)
  wait_port $QP_PORT $! qpsmtpd || { cat "$d/log" >&2; return 1; }
  log "qpsmtpd-forkserver pid ${ROOT_PID[qpsmtpd]} on 127.0.0.1:$QP_PORT (user $QP_USER)"
}

start_haraka_as() {  # peer-name port nodelay(0/1)
  local name=$1 port=$2 nodelay=$3 d="$STATE/$1"
  port_busy "$port" && { log "port $port already in use"; return 1; }
  [ -f "$HARAKA_BIN" ] || { log "Haraka not installed: run install-peers.sh"; return 1; }
  # haraka -i lays down the full default config (connection.ini etc.); ours go on top
  node "$HARAKA_BIN" -i "$d" > /dev/null
  cp "$PEERS_DIR/haraka/config/"* "$d/config/"
  cp "$PEERS_DIR/haraka/plugins/"* "$d/plugins/"
  sed -i -e "s/^nodes=.*/nodes=$HARAKA_NODES/" -e "s/^listen=.*/listen=127.0.0.1:$port/" \
    "$d/config/smtp.ini"
  [ "$nodelay" = 1 ] && sed -i 's/^bench_no_rdns$/bench_no_rdns\nbench_nodelay/' "$d/config/plugins"
  ( cd "$d" && exec node "$HARAKA_BIN" -c "$d" ) > "$d/log" 2>&1 &
  ROOT_PID[$name]=$!; STARTED+=($!)
  wait_port "$port" $! "$name" || { tail -20 "$d/log" >&2; return 1; }
  log "Haraka ($name) pid ${ROOT_PID[$name]} on 127.0.0.1:$port (nodes=$HARAKA_NODES, nodelay=$nodelay)"
}
start_haraka() { start_haraka_as haraka $HARAKA_PORT 0; }
start_haraka_nodelay() { start_haraka_as haraka_nodelay $HARAKA_ND_PORT 1; }

start_postfix() {
  local d="$STATE/postfix"
  [ "$(id -u)" = 0 ] || { log "Postfix peer needs root; skipped"; return 1; }
  port_busy $PF_PORT && { log "port $PF_PORT already in use"; return 1; }
  mkdir -p "$d/etc" "$d/queue"   # data_directory is created by postfix (owner postfix)
  chmod 755 "$d" "$d/queue"
  sed "s|@STATE@|$STATE|g" "$PEERS_DIR/postfix/main.cf.in" > "$d/etc/main.cf"
  cp "$PEERS_DIR/postfix/master.cf" "$d/etc/master.cf"
  [ -f /etc/postfix/dynamicmaps.cf ] && cp /etc/postfix/dynamicmaps.cf "$d/etc/"
  # postfix reports fatal errors only to its log (maillog_file) or a tty
  /usr/sbin/postfix -c "$d/etc" check || { cat "$d/maillog" >&2 2>/dev/null; return 1; }
  PF_STARTED=1
  /usr/sbin/postfix -c "$d/etc" start >/dev/null 2>&1 || { cat "$d/maillog" >&2; return 1; }
  wait_port $PF_PORT "" postfix || { cat "$d/maillog" >&2; return 1; }
  ROOT_PID[postfix]=$(tr -d ' \n' < "$d/queue/pid/master.pid")
  log "Postfix master pid ${ROOT_PID[postfix]} on 127.0.0.1:$PF_PORT (queue $d/queue)"
}

start_gateway() {  # variant name
  local name=$1 d="$STATE/gw-$1" port=${GW_PORT[$1]}
  port_busy "$port" && { log "port $port already in use"; return 1; }
  mkdir -p "$d"
  ( cd "$d" && exec bash -c "exec ${GW_CMD[$name]}" ) > "$d/log" 2>&1 &
  ROOT_PID[$name]=$!; STARTED+=($!)
  wait_port "$port" $! "$name" || { tail -20 "$d/log" >&2; return 1; }
  log "$name pid ${ROOT_PID[$name]} on 127.0.0.1:$port"
}

port_of() { case $1 in sink) echo $SINK_PORT;; qpsmtpd) echo $QP_PORT;;
                       haraka) echo $HARAKA_PORT;; postfix) echo $PF_PORT;;
                       haraka_nodelay) echo $HARAKA_ND_PORT;;
                       *) echo "${GW_PORT[$1]}";; esac; }
mode_of() { case $1 in sink) echo "direct";; qpsmtpd) echo "fwd-sync";;
                       haraka) echo "fwd-sync,nodes=$HARAKA_NODES";;
                       haraka_nodelay) echo "fwd-sync,nodes=$HARAKA_NODES,nodelay";;
                       postfix) echo "queue+relay";; *) echo "${GW_MODE[$1]}";; esac; }
name_of() { echo "$1"; }

run_one() {      # peer sessions size reuse(0/1) msgs rep outfile
  local peer=$1 s=$2 l=$3 reuse=$4 m=$5 rep=$6 out=$7 busy extra=()
  [ "$reuse" = 1 ] && extra=(-d)
  busy=$($PB quiet --max-wait "$QUIET_WAIT" --threshold "$QUIET_PCT")
  $PB run --peer "$(name_of "$peer")" --mode "$(mode_of "$peer")" --target "127.0.0.1:$(port_of "$peer")" \
    --pids "${ROOT_PID[$peer]}" --sink-pid "${ROOT_PID[sink]}" --sink-out "$STATE/sink.out" \
    -s "$s" -m "$m" -l "$l" "${extra[@]}" --timeout "$RUN_TIMEOUT" \
    --pre-busy "$busy" --rep "$rep" >> "$out"
  tail -1 "$out" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read());
print("  %(peer)-8s s=%(sessions)-3s l=%(size)-6s reuse=%(reuse)-5s %(accept_rate)8.1f msg/s  e2e %(e2e_rate)8.1f  delivered %(delivered)s/%(msgs)s  rc=%(src_rc)s  cpu %(srv_cpu_ms)s ms/msg  rss %(peak_rss_kb)s kB  other %(other_cpu)s%%" % r)' >&2
}

# ---------------------------------------------------------------- main
log "state in $STATE; results -> $RES"
start_sink
ACTIVE=()
for p in $PEERS; do
  case $p in
    sink) ACTIVE+=(sink) ;;
    qpsmtpd|haraka|haraka_nodelay|postfix)
      if "start_$p"; then ACTIVE+=("$p"); else log "peer $p not started; skipping it"; fi ;;
    *)
      [ -n "${GW_PORT[$p]:-}" ] || { log "unknown peer $p"; exit 1; }
      if start_gateway "$p"; then ACTIVE+=("$p"); else log "gateway $p not started; skipping it"; fi ;;
  esac
done
if [ -n "${SERVE_SECONDS:-}" ]; then
  for p in "${ACTIVE[@]}"; do log "serving: $(name_of "$p") on 127.0.0.1:$(port_of "$p")"; done
  log "sink counter: tr '\\r' '\\n' < $STATE/sink.out | tail -1"
  log "stopping everything in $SERVE_SECONDS s (Ctrl-C stops now)"
  sleep "$SERVE_SECONDS" & STARTED+=($!); wait $! || true
  rm -f "$RES"
  exit 0
fi
for p in "${ACTIVE[@]}"; do
  log "warm-up $p ($WARMUP msgs)"
  run_one "$p" 10 1024 0 "$WARMUP" 0 "$WARM"
done

for rep in $(seq 1 "$REPS"); do
  for load in $LOADS; do
    IFS=: read -r s l r <<< "$load"
    reuse=0; [ "${r:-}" = reuse ] && reuse=1
    for p in "${ACTIVE[@]}"; do
      v="MSGS_${p//[^A-Za-z0-9_]/_}"; m="${!v:-$MSGS}"  # wasmtp-rust -> MSGS_wasmtp_rust
      run_one "$p" "$s" "$l" "$reuse" "$m" "$rep" "$RES"
    done
  done
done

# The gateway variants' own per-hook timing ([metrics] on listener port +
# 7000, when their config has it), saved before they are stopped.
if [ -n "${METRICS_DIR:-}" ]; then
  mkdir -p "$METRICS_DIR"
  for p in "${ACTIVE[@]}"; do
    [ -n "${GW_PORT[$p]:-}" ] || continue
    python3 "$HERE/scrape.py" "http://127.0.0.1:$(( ${GW_PORT[$p]} + 7000 ))/metrics" \
      "$METRICS_DIR/$p.prom" && log "metrics of $p saved" || true
  done
fi

{
  echo "# run-peers.sh $STAMP  host: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
  echo "# postfix $(/usr/sbin/postconf -dh mail_version 2>/dev/null)," \
       "qpsmtpd $(dpkg-query -W -f='${Version}' qpsmtpd 2>/dev/null)," \
       "Haraka $(node -p "require('$HARAKA_DIR/node_modules/Haraka/package.json').version" 2>/dev/null)," \
       "node $(node --version 2>/dev/null)"
  echo "# REPS=$REPS MSGS=$MSGS MSGS_sink=$MSGS_sink MSGS_qpsmtpd=$MSGS_qpsmtpd LOADS='$LOADS'"
  echo "# msgs/s = client-side accept rate (median of reps); e2e/s = until the sink counted all"
  echo "# cpu ms/msg = server process tree CPU per message; other% = CPU of unrelated processes during the run"
  $PB table "$RES"
} | tee "$RESULTS_DIR/run-$STAMP.txt"

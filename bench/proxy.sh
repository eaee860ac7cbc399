#!/usr/bin/env bash
# The cost of HAProxy in front of the gateway (PROXY protocol v2), in one run:
# one release gateway in forward mode (no plugins) with two listeners,
#   127.0.0.1:2531  plain                          <- smtp-source ("direct")
#   127.0.0.1:2532  proxy_protocol = true          <- HAProxy 127.0.0.1:2533
#                                                     (send-proxy-v2) <- smtp-source ("haproxy")
# both forwarding to smtp-sink on 127.0.0.1:2525. The loads alternate
# direct/haproxy REPS times (peerbench.py from ../shared/bench/peers); the
# server CPU of the "haproxy" runs includes HAProxy's. Writes
# bench/results/proxy-STAMP.jsonl and .txt (median table).
#
# Knobs: WASMTP_BIN=target/release/wasmtp  LOADS="10:1024"  REPS=3  KEEP_STATE=1
#        MSGS=3000  QUIET_PCT=25 QUIET_WAIT=5  PEERS_DIR=../shared/bench/peers
# Needs: postfix (smtp-source, smtp-sink), haproxy, python3. Only loopback.
# (50 sessions of 1 KiB get `452 4.3.1` from the default memory budget, direct
# and through HAProxy alike: this script's default load is 10 sessions.)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

WASMTP_BIN="${WASMTP_BIN:-$ROOT/target/release/wasmtp}"
LOADS="${LOADS:-10:1024}"
REPS="${REPS:-3}"
MSGS="${MSGS:-3000}"
QUIET_PCT="${QUIET_PCT:-25}" QUIET_WAIT="${QUIET_WAIT:-5}"
SINK_PORT=2525 DIRECT_PORT=2531 PROXIED_PORT=2532 HAPROXY_PORT=2533
STAMP="$(date +%Y%m%d-%H%M%S)"
RESULTS_DIR="$HERE/results"
OUT="$RESULTS_DIR/proxy-$STAMP.jsonl"

[ -x "$WASMTP_BIN" ] || { log "no gateway binary at $WASMTP_BIN (cargo build --release)"; exit 1; }
for b in /usr/sbin/smtp-source /usr/sbin/smtp-sink /usr/sbin/haproxy; do
  [ -x "$b" ] || { log "$b is missing: apt-get install postfix haproxy"; exit 1; }
done
PEERS_DIR_FOUND=""
for d in "${PEERS_DIR:-}" "$ROOT/../shared/bench/peers" "$ROOT/../../shared/bench/peers"; do
  if [ -n "$d" ] && [ -f "$d/peerbench.py" ]; then PEERS_DIR_FOUND="$(cd "$d" && pwd)"; break; fi
done
[ -n "$PEERS_DIR_FOUND" ] || { log "shared/bench/peers not found beside the repository (set PEERS_DIR)"; exit 1; }
PB="python3 $PEERS_DIR_FOUND/peerbench.py"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $SINK_PORT $DIRECT_PORT $PROXIED_PORT $HAPROXY_PORT; do
  port_busy "$p" && { log "port $p already in use"; exit 1; }
done

STATE="$(mktemp -d "${TMPDIR:-/tmp}/wasmtp-proxy.XXXXXX")"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  [ "${KEEP_STATE:-0}" = 1 ] || rm -rf "$STATE"
}
trap cleanup EXIT

wait_port() {  # port pid name
  for _ in $(seq 1 600); do
    port_busy "$1" && return 0
    kill -0 "$2" 2>/dev/null || { log "$3 exited; its log:"; cat "$STATE/$3.log" >&2 || true; exit 1; }
    sleep 0.1
  done
  log "$3 did not listen on $1"; exit 1
}

# smtp-sink drops privileges itself when run as root
SINK_USER_OPT=()
[ "$(id -u)" = 0 ] && SINK_USER_OPT=(-u nobody)
( exec /usr/sbin/smtp-sink -c "${SINK_USER_OPT[@]}" 127.0.0.1:$SINK_PORT 1000 ) \
  > "$STATE/sink.out" 2> "$STATE/sink.log" &
SINK_PID=$!; PIDS+=("$SINK_PID")
wait_port $SINK_PORT "$SINK_PID" sink

cat > "$STATE/gateway.toml" <<EOF
[server]
hostname = "bench.wasmtp.local"
max_connections = 2000
max_connections_per_ip = 2000

[[listeners]]
address = "127.0.0.1:$DIRECT_PORT"
mode = "smtp"

[[listeners]]
address = "127.0.0.1:$PROXIED_PORT"
mode = "smtp"
proxy_protocol = true
proxy_trusted = ["127.0.0.1/32"]

[relay]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]

[log]
filter = "warn"

[delivery]
mode = "forward"

[delivery.forward]
upstreams = ["127.0.0.1:$SINK_PORT"]
tls = "none"
helo_name = "bench.wasmtp.local"
pool_size = 64
EOF
( cd "$STATE" && exec "$WASMTP_BIN" run --config "$STATE/gateway.toml" ) > "$STATE/gateway.log" 2>&1 &
GW_PID=$!; PIDS+=("$GW_PID")
wait_port $DIRECT_PORT "$GW_PID" gateway
wait_port $PROXIED_PORT "$GW_PID" gateway

cat > "$STATE/haproxy.cfg" <<EOF
global
    maxconn 4000
    nbthread 1

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend mx
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend gateway

backend gateway
    server gw 127.0.0.1:$PROXIED_PORT send-proxy-v2
EOF
haproxy -c -f "$STATE/haproxy.cfg" >/dev/null
( exec haproxy -db -f "$STATE/haproxy.cfg" ) > "$STATE/haproxy.log" 2>&1 &
HA_PID=$!; PIDS+=("$HA_PID")
wait_port $HAPROXY_PORT "$HA_PID" haproxy
log "sink $SINK_PID, gateway $GW_PID, haproxy $HA_PID; state in $STATE"

mkdir -p "$RESULTS_DIR"
run_one() {  # name port pids sessions size msgs rep outfile
  local busy
  busy=$($PB quiet --max-wait "$QUIET_WAIT" --threshold "$QUIET_PCT")
  $PB run --peer "$1" --mode "fwd-sync" --target "127.0.0.1:$2" --pids "$3" \
    --sink-pid "$SINK_PID" --sink-out "$STATE/sink.out" -s "$4" -m "$6" -l "$5" \
    --timeout 600 --pre-busy "$busy" --rep "$7" >> "$8"
  tail -1 "$8" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read());
print("  %(peer)-8s s=%(sessions)-3s l=%(size)-6s %(accept_rate)8.1f msg/s  delivered %(delivered)s/%(msgs)s  rc=%(src_rc)s  cpu %(srv_cpu_ms)s ms/msg  other %(other_cpu)s%%" % r)' >&2
}

log "warm-up"
run_one direct $DIRECT_PORT "$GW_PID" 10 1024 300 0 "$STATE/warm.jsonl"
run_one haproxy $HAPROXY_PORT "$GW_PID,$HA_PID" 10 1024 300 0 "$STATE/warm.jsonl"
for rep in $(seq 1 "$REPS"); do
  for load in $LOADS; do
    IFS=: read -r s l <<< "$load"
    run_one direct $DIRECT_PORT "$GW_PID" "$s" "$l" "$MSGS" "$rep" "$OUT"
    run_one haproxy $HAPROXY_PORT "$GW_PID,$HA_PID" "$s" "$l" "$MSGS" "$rep" "$OUT"
  done
done
$PB table "$OUT" | tee "${OUT%.jsonl}.txt" >&2
log "wrote ${OUT#"$ROOT"/} and ${OUT%.jsonl}.txt"

#!/usr/bin/env bash
# wasmtp side-by-side benchmark (`cargo xtask bench` builds, then runs this).
#
# 1. installs the load tools and the peers (Postfix's smtp-source/smtp-sink,
#    swaks, qpsmtpd, Postfix, Haraka), like ../shared/bench/peers/install-peers.sh
#    but with Haraka under target/bench/ (the shared folder is only read);
# 2. starts smtp-sink on 127.0.0.1:2525, the peers, and every gateway variant
#    of bench/configs/ whose config this build accepts (forward mode to the
#    sink), and runs the same smtp-source loads against each, interleaved
#    (bench/peers.sh, a copy of the shared run-peers.sh that takes several
#    gateway variants);
# 3. holds IDLE_CONNS idle connections after EHLO against the Rust-chain
#    variant and reports RSS per connection (bench/idle.py);
# 4. writes bench/RESULTS.md (bench/report.py) and keeps the raw JSON lines
#    in bench/results/.
#
# Everything stays on 127.0.0.1 (ports 2525-2599; the host-services stage runs
# its DNS server on 2553). Needs root for apt and the Postfix peer. Knobs
# (environment):
#   WASMTP_BIN=target/release/wasmtp   the gateway binary
#   VARIANTS="wasmtp wasmtp-rust wasmtp-mixed wasmtp-saf"   bench/configs/<name>.toml
#   PEERS="sink qpsmtpd haraka haraka_nodelay postfix"
#   LOADS="10:1024 50:1024 10:102400 50:102400 10:1024:reuse"  REPS=3
#   MSGS=3000 MSGS_sink=10000 MSGS_qpsmtpd=300 MSGS_haraka=600 MSGS_haraka_nodelay=600
#   MSGS_wasmtp_mixed=1500   (the slow targets get fewer messages: the whole
#                      command must stay under 30 minutes on a fresh 2-core machine)
#   QUIET_PCT=25 QUIET_WAIT=5   wait up to QUIET_WAIT s for the machine to calm down
#   IDLE_CONNS=10000   (0 skips the idle test)
#   NO_INSTALL=1       skip the install step; INSTALL_ONLY=1: only install
#   MAIN_LOADS=0       skip the loads above; LANG_COST=0 skip the plugin-cost
#                      stage (bench/configs/lang/, LANG_REPS=3 LANG_MSGS=2000)
#   SERVICES=0         skip the host-services stage (dnsbl + greylist + ratelimit,
#                      bench/configs/wasmtp-services.toml; SERVICES_REPS=3
#                      SERVICES_MSGS=2000 SERVICES_LOADS=10:1024; DNS on :2553)
#                      Run it alone: MAIN_LOADS=0 LANG_COST=0 IDLE_CONNS=0 NO_INSTALL=1
#   PEERS_DIR=...      the shared peers folder (default: ../shared/bench/peers)
#   RESULTS_MD=bench/RESULTS.md
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
T0="${BENCH_STARTED:-$(date +%s)}"  # cargo xtask bench sets it before building

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

WASMTP_BIN="${WASMTP_BIN:-$ROOT/target/release/wasmtp}"
VARIANTS="${VARIANTS:-wasmtp wasmtp-rust wasmtp-mixed wasmtp-saf}"
PEER_LIST="${PEERS:-sink qpsmtpd haraka haraka_nodelay postfix}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
RESULTS_MD="${RESULTS_MD:-$HERE/RESULTS.md}"
WORK="$ROOT/target/bench"
RESULTS_DIR="$HERE/results"
export REPS="${REPS:-3}" LOADS="${LOADS:-10:1024 50:1024 10:102400 50:102400 10:1024:reuse}"
export MSGS="${MSGS:-3000}" MSGS_sink="${MSGS_sink:-10000}" MSGS_qpsmtpd="${MSGS_qpsmtpd:-300}"
export MSGS_haraka="${MSGS_haraka:-600}" MSGS_haraka_nodelay="${MSGS_haraka_nodelay:-600}"
export MSGS_wasmtp_mixed="${MSGS_wasmtp_mixed:-1500}"
export QUIET_PCT="${QUIET_PCT:-25}" QUIET_WAIT="${QUIET_WAIT:-5}"
STAMP="$(date +%Y%m%d-%H%M%S)"
export STAMP
# Prometheus scrapes of the gateway variants that have [metrics] (both stages)
METRICS_OUT="$RESULTS_DIR/metrics-$STAMP"

[ -x "$WASMTP_BIN" ] || { log "no gateway binary at $WASMTP_BIN: run cargo xtask bench"; exit 1; }

PEERS_DIR_FOUND=""
for d in "${PEERS_DIR:-}" "$ROOT/../shared/bench/peers" "$ROOT/../../shared/bench/peers"; do
  if [ -n "$d" ] && [ -f "$d/peerbench.py" ]; then PEERS_DIR_FOUND="$(cd "$d" && pwd)"; break; fi
done
[ -n "$PEERS_DIR_FOUND" ] || { log "shared/bench/peers not found beside the repository (set PEERS_DIR)"; exit 1; }
export PEERS_DIR="$PEERS_DIR_FOUND"
mkdir -p "$WORK" "$RESULTS_DIR"

# ------------------------------------------------------------------ install
install_all() {
  local need_apt=0 b
  for b in /usr/sbin/smtp-source /usr/sbin/smtp-sink /usr/sbin/postfix /usr/bin/swaks \
           /usr/bin/qpsmtpd-forkserver /usr/bin/python3; do
    [ -x "$b" ] || need_apt=1
  done
  perl -MNet::IP -e1 2>/dev/null || need_apt=1
  # swaks --tls needs Net::SSLeay, only a Recommends of the swaks package
  perl -MNet::SSLeay -e1 2>/dev/null || need_apt=1
  command -v node >/dev/null && command -v npm >/dev/null || need_apt=1
  if [ "$need_apt" = 1 ]; then
    [ "$(id -u)" = 0 ] || { log "missing tools and not root: run as root once"; exit 1; }
    local postfix_was_there=0
    [ -x /usr/sbin/postfix ] && postfix_was_there=1
    export DEBIAN_FRONTEND=noninteractive
    # "No configuration": no main.cf, so no system mail server is set up or started
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # wait for the dpkg lock rather than fail when another install is running
    apt-get -o DPkg::Lock::Timeout=600 update -q
    local pkgs=(postfix swaks libnet-ssleay-perl libio-socket-ssl-perl qpsmtpd libnet-ip-perl python3)
    command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${pkgs[@]}"
    if [ "$postfix_was_there" = 0 ] && [ -f /var/spool/postfix/pid/master.pid ]; then
      local p; p=$(tr -d ' \n' < /var/spool/postfix/pid/master.pid)
      if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
        log "the postfix package started a master ($p); stopping it"; /usr/sbin/postfix stop || true
      fi
    fi
  fi
  local hk="$WORK/haraka-install"
  if [ ! -x "$hk/node_modules/.bin/haraka" ]; then
    mkdir -p "$hk"
    cp "$PEERS_DIR/haraka-install/package.json" "$PEERS_DIR/haraka-install/package-lock.json" "$hk/"
    # package-lock.json pins Haraka 3.3.4 (see the shared README for the libmime override)
    (cd "$hk" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
if [ "${NO_INSTALL:-0}" != 1 ]; then
  log "install: load tools and peers"
  install_all
fi
[ "${INSTALL_ONLY:-0}" = 1 ] && { log "install done (INSTALL_ONLY=1)"; exit 0; }
export HARAKA_DIR="$WORK/haraka-install"

# ------------------------------------------------------------------ variants
# A variant runs when its config passes `wasmtp check-config` and every plugin
# it names is built; otherwise it is listed as skipped, with the reason.
mkdir -p "$WORK/configs"
GW_VARIANTS=""
ACTIVE_VARIANTS=()
SKIPPED=()
declare -A VPORT=() VMODE=()
mode_label() {
  case $1 in
    wasmtp) echo "fwd-sync, no plugins" ;;
    wasmtp-rust) echo "fwd-sync, Rust chain" ;;
    wasmtp-mixed) echo "fwd-sync, Rust+JS+Python+C chain" ;;
    wasmtp-saf) echo "store-and-forward" ;;
    wasmtp-services) echo "fwd-sync, dnsbl+greylist+ratelimit" ;;
    lang-*-percon) local l=${1#lang-}; echo "fwd-sync, one ${l%-percon} plugin, per-connection instances" ;;
    lang-*-pooled) local l=${1#lang-}; echo "fwd-sync, one ${l%-pooled} plugin, pooled instances" ;;
    *) echo "fwd" ;;
  esac
}
# prepare_variant NAME CONFIG: checks and registers one gateway variant
# (appends to VARIANT_LINES, or to SKIPPED with the reason; returns 1 then).
prepare_variant() {
  local v=$1 src=$2 cfg missing wasm err port
  [ -f "$src" ] || { SKIPPED+=("$v: no ${src#"$ROOT"/}"); return 1; }
  cfg="$WORK/configs/$v.toml"
  sed "s|@ROOT@|$ROOT|g" "$src" > "$cfg"
  missing=""
  for wasm in $(grep -oE '"[^"]+\.wasm"' "$cfg" | tr -d '"'); do
    [ -f "$wasm" ] || missing="$missing ${wasm#"$ROOT"/}"
  done
  if [ -n "$missing" ]; then SKIPPED+=("$v: plugins not built:$missing"); return 1; fi
  if ! err=$(cd "$WORK" && "$WASMTP_BIN" check-config --config "$cfg" 2>&1); then
    SKIPPED+=("$v: config refused by this build: $(echo "$err" | tr '\n' ' ' | cut -c1-300)")
    return 1
  fi
  port=$(grep -oE '^address = "127\.0\.0\.1:[0-9]+"' "$cfg" | head -1 | grep -oE '[0-9]+"$' | tr -d '"')
  [ -n "$port" ] || { SKIPPED+=("$v: no 127.0.0.1 listener in its config"); return 1; }
  VPORT[$v]=$port VMODE[$v]="$(mode_label "$v")"
  VARIANT_LINES+="$v|$port|${VMODE[$v]}|$WASMTP_BIN run --config $cfg"$'\n'
}
VARIANT_LINES=""
for v in $VARIANTS; do
  prepare_variant "$v" "$HERE/configs/$v.toml" && ACTIVE_VARIANTS+=("$v")
done
GW_VARIANTS="$VARIANT_LINES"
for s in "${SKIPPED[@]}"; do log "variant skipped: $s"; done
[ "${#ACTIVE_VARIANTS[@]}" -gt 0 ] || log "no gateway variant can run with this build"
export GW_VARIANTS

# 10,000 idle connections need that many descriptors in the gateway.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
log "fd limit $(ulimit -n)"

# ------------------------------------------------------------------ loads
# Order: the sink first (the ceiling), the gateway variants, then the peers.
ORDER=""
for p in $PEER_LIST; do [ "$p" = sink ] && ORDER="sink"; done
ORDER="$ORDER ${ACTIVE_VARIANTS[*]:-}"
for p in $PEER_LIST; do [ "$p" = sink ] || ORDER="$ORDER $p"; done
if [ "${MAIN_LOADS:-1}" = 1 ]; then
  log "loads: $LOADS, REPS=$REPS, targets: $ORDER"
  PEERS="$ORDER" RESULTS_DIR="$RESULTS_DIR" METRICS_DIR="$METRICS_OUT" \
    START_WAIT=180 bash "$HERE/peers.sh"
fi

# ------------------------------------------------------------------ plugin cost per language
# One plugin per language (bench/configs/lang/), per-connection and pooled,
# next to the gateway with no plugins, under one load (10 sessions, 1 KiB,
# a new connection per message): CPU ms/msg per-connection - pooled is the
# instantiation + init cost per connection; pooled - none the cost of the
# plugin's hooks per message, as the gateway pays them.
LANG_JSONL=""
if [ "${LANG_COST:-1}" = 1 ]; then
  VARIANT_LINES=""
  LANG_ORDER="sink"
  prepare_variant wasmtp "$HERE/configs/wasmtp.toml" && LANG_ORDER+=" wasmtp"
  for f in "$HERE"/configs/lang/*.toml; do
    v=$(basename "$f" .toml)
    prepare_variant "$v" "$f" && LANG_ORDER+=" $v"
  done
  for s in "${SKIPPED[@]}"; do [[ "$s" == lang-* ]] && log "plugin-cost variant skipped: $s"; done
  LANG_JSONL="$RESULTS_DIR/run-$STAMP-lang.jsonl"
  log "plugin cost: 10:1024 x ${LANG_REPS:-3}, targets: $LANG_ORDER"
  STAMP="$STAMP-lang" GW_VARIANTS="$VARIANT_LINES" PEERS="$LANG_ORDER" LOADS="10:1024" \
    REPS="${LANG_REPS:-3}" MSGS="${LANG_MSGS:-2000}" MSGS_sink="${LANG_MSGS:-2000}" \
    RESULTS_DIR="$RESULTS_DIR" METRICS_DIR="$METRICS_OUT" \
    START_WAIT=180 bash "$HERE/peers.sh" \
    || { log "plugin-cost stage failed; its table is left out"; LANG_JSONL=""; }
fi

# ------------------------------------------------------------------ host services (issue 13)
# dnsbl + greylist + ratelimit (bench/configs/wasmtp-services.toml) next to
# the gateway with no plugins, same run, one load (10 sessions, 1 KiB, a new
# connection per message). The DNSBL zone is served by bench/dnsd.py on
# 127.0.0.1:2553 (started here, stopped by its PID); the state lives in the
# embedded store under the gateway's runtime folder.
SERVICES_JSONL=""
if [ "${SERVICES:-1}" = 1 ]; then
  VARIANT_LINES=""
  SVC_ORDER="sink"
  prepare_variant wasmtp "$HERE/configs/wasmtp.toml" && SVC_ORDER+=" wasmtp"
  if prepare_variant wasmtp-services "$HERE/configs/wasmtp-services.toml"; then
    SVC_ORDER+=" wasmtp-services"
    python3 "$HERE/dnsd.py" --port 2553 --zone bl.bench \
      --entry '2.0.0.127=127.0.0.2:listed by the benchmark zone' > "$WORK/dnsd.log" 2>&1 &
    dnsd_pid=$!
    stop_dnsd() { kill -TERM "$dnsd_pid" 2>/dev/null || true; wait "$dnsd_pid" 2>/dev/null || true; }
    trap stop_dnsd EXIT
    SERVICES_JSONL="$RESULTS_DIR/run-$STAMP-services.jsonl"
    log "host services: ${SERVICES_LOADS:-10:1024} x ${SERVICES_REPS:-3}, targets: $SVC_ORDER (dnsd pid $dnsd_pid)"
    STAMP="$STAMP-services" GW_VARIANTS="$VARIANT_LINES" PEERS="$SVC_ORDER" \
      LOADS="${SERVICES_LOADS:-10:1024}" REPS="${SERVICES_REPS:-3}" \
      MSGS="${SERVICES_MSGS:-2000}" MSGS_sink="${SERVICES_MSGS:-2000}" \
      RESULTS_DIR="$RESULTS_DIR" METRICS_DIR="$METRICS_OUT" \
      START_WAIT=180 bash "$HERE/peers.sh" \
      || { log "host-services stage failed; its table is left out"; SERVICES_JSONL=""; }
    stop_dnsd
    trap - EXIT
    if [ -n "$SERVICES_JSONL" ]; then
      python3 "$HERE/report.py" --services-only --services-results "$SERVICES_JSONL" \
        --metrics-dir "$METRICS_OUT" --root "$ROOT" --out "$RESULTS_DIR/services-$STAMP.md" \
        && { log "host services:"; cat "$RESULTS_DIR/services-$STAMP.md" >&2; }
    fi
  else
    for s in "${SKIPPED[@]}"; do [[ "$s" == wasmtp-services* ]] && log "host-services stage skipped: $s"; done
  fi
fi

# ------------------------------------------------------------------ idle connections
IDLE_JSON=""
idle_variant=""
for v in wasmtp-rust wasmtp; do
  [[ " ${ACTIVE_VARIANTS[*]:-} " == *" $v "* ]] && { idle_variant=$v; break; }
done
if [ "$IDLE_CONNS" -gt 0 ] && [ -n "$idle_variant" ]; then
  IDLE_JSON="$RESULTS_DIR/idle-$STAMP.json"
  d="$(mktemp -d "${TMPDIR:-/tmp}/wasmtp-idle.XXXXXX")"
  log "idle test: $IDLE_CONNS connections to $idle_variant (127.0.0.1:${VPORT[$idle_variant]})"
  ( cd "$d" && exec "$WASMTP_BIN" run --config "$WORK/configs/$idle_variant.toml" ) > "$d/log" 2>&1 &
  gw_pid=$!
  stop_gw() {
    kill -TERM "$gw_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$gw_pid" 2>/dev/null || true
    wait "$gw_pid" 2>/dev/null || true
  }
  trap stop_gw EXIT
  if python3 "$HERE/idle.py" --target "127.0.0.1:${VPORT[$idle_variant]}" --conns "$IDLE_CONNS" \
       --pid "$gw_pid" --variant "$idle_variant" > "$IDLE_JSON"; then
    log "idle: $(cat "$IDLE_JSON")"
  else
    log "idle test failed; gateway log tail:"; tail -5 "$d/log" >&2 || true
  fi
  stop_gw
  trap - EXIT
  rm -rf "$d"
fi

# ------------------------------------------------------------------ report
SKIP_ARGS=()
for s in "${SKIPPED[@]}"; do SKIP_ARGS+=(--skipped "$s"); done
if [ ! -s "$RESULTS_DIR/run-$STAMP.jsonl" ]; then
  log "no main loads in this run (MAIN_LOADS=0): ${RESULTS_MD#"$ROOT"/} left as it is"
  log "raw: ${LANG_JSONL:-none} ${SERVICES_JSONL:-} ${IDLE_JSON:-}"
  exit 0
fi
python3 "$HERE/report.py" --results "$RESULTS_DIR/run-$STAMP.jsonl" \
  ${LANG_JSONL:+--lang-results "$LANG_JSONL"} \
  ${SERVICES_JSONL:+--services-results "$SERVICES_JSONL"} \
  ${IDLE_JSON:+--idle "$IDLE_JSON"} "${SKIP_ARGS[@]}" \
  --metrics-dir "$METRICS_OUT" \
  --wasmtp-bin "$WASMTP_BIN" --haraka-dir "$HARAKA_DIR" --root "$ROOT" \
  --elapsed "$(( $(date +%s) - T0 ))" --out "$RESULTS_MD"
log "wrote ${RESULTS_MD#"$ROOT"/} (raw: bench/results/run-$STAMP.jsonl) in $(( $(date +%s) - T0 )) s"

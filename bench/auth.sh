#!/usr/bin/env bash
# The mail-authentication stage (issue 16 item 8): SPF + DKIM verify + DMARC
# (the mail-auth plugin) on DKIM-signed 4 KiB messages, beside the gateway
# with no plugins, in the same run, both forwarding to smtp-sink.
#
# Everything is on loopback: bench/dnsd.py serves the zone auth.bench on
# 127.0.0.1:2554 (SPF "ip4:127.0.0.0/8 -all", an RSA-2048 DKIM key, DMARC
# p=reject); the gateway's [dns] resolver points at it and caches answers.
# The message is signed once by dkimpy (rsa-sha256, relaxed/relaxed) and
# sent by smtp-source -F. A message whose DKIM or DMARC failed would be
# refused (p=reject), so every run must deliver all its messages.
# Per-hook p50/p99 come from the gateway's Prometheus histograms.
#
#   cargo build --release && cargo xtask plugins     (dkimpy: cargo xtask test's venv)
#   bash bench/auth.sh        # REPS=3 MSGS=2000 SESSIONS=10
# Writes bench/results/auth-STAMP.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

BIN="${WASMTP_BIN:-$ROOT/target/release/wasmtp}"
PLUGIN="$ROOT/target/plugins/mail-auth.wasm"
PY="$ROOT/target/venv-tests/bin/python"
REPS="${REPS:-3}" MSGS="${MSGS:-2000}" SESSIONS="${SESSIONS:-10}"
for f in "$BIN" "$PLUGIN" "$PY" /usr/sbin/smtp-source /usr/sbin/smtp-sink; do
  [ -e "$f" ] || { log "missing $f (see the top of this script)"; exit 1; }
done
STAMP="$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/wasmtp-auth.XXXXXX")"
OUT="$HERE/results/auth-$STAMP.md"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP_STATE:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- key, message, zone
openssl genrsa -out "$WORK/dkim.key" 2048 2>/dev/null
PUB=$(openssl rsa -in "$WORK/dkim.key" -pubout -outform DER 2>/dev/null | base64 -w0)
"$PY" - "$WORK/dkim.key" "$WORK/msg.eml" <<'EOF'
import sys, dkim
key, out = open(sys.argv[1], "rb").read(), sys.argv[2]
line = b"The quick brown fox jumps over the lazy dog, a 4 KiB benchmark line.\r\n"
body = line * (4096 // len(line))
msg = (b"From: Alice <a@auth.bench>\r\nTo: b@example.test\r\n"
       b"Subject: signed benchmark message\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
       b"Message-ID: <bench@auth.bench>\r\n\r\n" + body)
sig = dkim.sign(msg, b"sel", b"auth.bench", key, canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[b"From", b"To", b"Subject", b"Date", b"Message-ID"])
signed = (sig + msg).replace(b"\r\n", b"\n")  # smtp-source -F adds CRLF per line
open(out, "wb").write(signed)
print(f"signed message: {len(signed)} octets", file=sys.stderr)
EOF

python3 "$HERE/dnsd.py" --port 2554 --zone auth.bench \
  --txt "auth.bench=v=spf1 ip4:127.0.0.0/8 -all" \
  --txt "sel._domainkey.auth.bench=v=DKIM1; k=rsa; p=$PUB" \
  --txt "_dmarc.auth.bench=v=DMARC1; p=reject; adkim=r; aspf=r" > "$WORK/dnsd.log" 2>&1 &
PIDS+=($!)

# ---------------------------------------------------------------- sink and gateways
(cd "$WORK" && exec /usr/sbin/smtp-sink -u nobody 127.0.0.1:2575 1000) > "$WORK/sink.log" 2>&1 &
PIDS+=($!)

gateway_config() { # PORT METRICS PLUGINS
  cat <<EOF
[server]
hostname = "mx.bench.test"
max_connections = 20000
max_connections_per_ip = 20000
[[listeners]]
address = "127.0.0.1:$1"
mode = "smtp"
[relay]
local_domains = ["example.test"]
[limits]
memory_budget = 0
[log]
filter = "warn"
[dns]
resolver = "127.0.0.1:2554"
[metrics]
listen = "127.0.0.1:$2"
[delivery]
mode = "forward"
[delivery.forward]
upstreams = ["127.0.0.1:2575"]
tls = "none"
helo_name = "mx.bench.test"
pool_size = 64
[plugin_host]
cache_dir = "$ROOT/target/wasmtp-cache"
$3
EOF
}
gateway_config 2576 9576 "" > "$WORK/forward.toml"
gateway_config 2577 9577 "
[[plugins]]
name = \"mail-auth\"
path = \"$PLUGIN\"
dns = true
instances = \"pooled\"
pool_size = 32
[plugins.config]
authserv_id = \"mx.bench.test\"
spf_refuse = [\"fail\"]" > "$WORK/auth.toml"

declare -A PORT=([forward]=2576 [auth]=2577) GWPID=()
for v in forward auth; do
  (cd "$WORK" && exec "$BIN" run --config "$WORK/$v.toml") > "$WORK/$v.log" 2>&1 &
  GWPID[$v]=$!
  PIDS+=($!)
done
for v in forward auth; do
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$v]}") 2>/dev/null && break
    sleep 0.2
  done
done
log "gateways up: forward pid ${GWPID[forward]}, auth pid ${GWPID[auth]}"

cpu_ms() { awk '{print ($14 + $15) * 1000 / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
load() { # VARIANT N -> "rate cpu_ms_per_msg rc"
  local v=$1 n=$2 t0 t1 c0 c1 rc=0
  c0=$(cpu_ms "${GWPID[$v]}")
  t0=$(date +%s.%N)
  /usr/sbin/smtp-source -s "$SESSIONS" -m "$n" -f a@auth.bench -t b@example.test \
    -F "$WORK/msg.eml" "127.0.0.1:${PORT[$v]}" 2>> "$WORK/source-$v.err" || rc=$?
  t1=$(date +%s.%N)
  c1=$(cpu_ms "${GWPID[$v]}")
  awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" -v rc="$rc" \
    'BEGIN { printf "%.0f %.3f %d\n", n / (b - a), (d - c) / n, rc }'
}

for v in forward auth; do load "$v" 200 > /dev/null; done  # warm-up: compile, pool, DNS cache
RESULTS="$WORK/results.txt"
: > "$RESULTS"
for rep in $(seq 1 "$REPS"); do
  for v in forward auth; do
    r=$(load "$v" "$MSGS")
    log "rep $rep $v: $r (msg/s, gateway CPU ms/msg, smtp-source rc)"
    echo "$v $r" >> "$RESULTS"
  done
done
for v in forward auth; do
  python3 "$HERE/scrape.py" "http://127.0.0.1:$((PORT[$v] + 7000))/metrics" "$WORK/$v.prom"
done

python3 - "$RESULTS" "$WORK/auth.prom" "$WORK/forward.prom" "$OUT" "$SESSIONS" "$MSGS" "$REPS" <<'EOF'
import re, statistics, sys
results, prom, fwd_prom, out, sessions, msgs, reps = sys.argv[1:]
rows = {}
for line in open(results):
    v, rate, cpu, rc = line.split()
    rows.setdefault(v, []).append((float(rate), float(cpu), int(rc)))
def counter(path, name):
    total = 0.0
    for line in open(path):
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total
# per-hook histograms of mail-auth: cumulative buckets -> p50/p99
buckets = {}
for line in open(prom):
    m = re.match(r'wasmtp_plugin_hook_duration_seconds_bucket\{(.*)\} (\S+)', line)
    if not m:
        continue
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
    le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
    buckets.setdefault(labels["hook"], []).append((le, float(m.group(2))))
def quantile(bs, q):
    bs.sort()
    total = bs[-1][1]
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in bs:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le
lines = [f"# mail-auth stage: {sessions} sessions, {msgs} DKIM-signed 4 KiB messages per run, {reps} runs, new connection per message",
         "", "| gateway | msg/s (median) | runs | gateway CPU ms/msg (median) | every message delivered |", "|---|---|---|---|---|"]
for v, label in (("forward", "forward, no plugins"), ("auth", "forward, mail-auth (SPF + DKIM verify + DMARC)")):
    rs = rows.get(v, [])
    ok = all(rc == 0 for _, _, rc in rs)
    lines.append(f"| {label} | {statistics.median(r for r, _, _ in rs):.0f} | {', '.join(f'{r:.0f}' for r, _, _ in rs)} | "
                 f"{statistics.median(c for _, c, _ in rs):.3f} | {'yes' if ok else 'NO'} |")
fw, au = (statistics.median(r for r, _, _ in rows[v]) for v in ("forward", "auth"))
lines += ["", f"ratio auth/forward: {au / fw:.2f}x", "",
          "| mail-auth hook | calls | p50 | p99 |", "|---|---|---|---|"]
for hook, bs in sorted(buckets.items()):
    lines.append(f"| {hook} | {bs and max(c for _, c in bs):.0f} | {quantile(list(bs), 0.5) * 1e6:.0f} µs | {quantile(list(bs), 0.99) * 1e6:.0f} µs |")
rejected = counter(prom, "wasmtp_messages_rejected_total")
accepted = counter(prom, "wasmtp_messages_accepted_total")
lines += ["", f"mail-auth gateway: {accepted:.0f} messages accepted, {rejected:.0f} refused (a failed DKIM or DMARC check is refused: p=reject)"]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
log "wrote $OUT"

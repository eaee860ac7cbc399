#!/usr/bin/env bash
# The host-parsed MIME view (issue 15 item 5): the shipped Rust chain
# (bench/configs/wasmtp-rust.toml: helo-check, rcpt-allowlist,
# content-filter, attachment-block, header-stamp, disclaimer) on a 100 KiB
# multipart message (text/plain, text/html, a base64 PDF), with the content
# plugins as they were before the MIME view (each parsing the message
# itself: OLD_PLUGINS) and as they are now (target/plugins: one parse by
# the host), side by side in the same run: the same gateway binary, two
# gateways, interleaved repetitions, both forwarding to smtp-sink.
#
#   cp target/plugins/*.wasm OLD/            # BEFORE rebuilding the plugins
#   cargo build --release && cargo xtask plugins
#   OLD_PLUGINS=OLD bash bench/mime.sh       # REPS=5 MSGS=1000 SESSIONS=10
# Writes bench/results/mime-STAMP.md. Only loopback is used.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

BIN="${WASMTP_BIN:-$ROOT/target/release/wasmtp}"
NEW_PLUGINS="${NEW_PLUGINS:-$ROOT/target/plugins}"
OLD_PLUGINS="${OLD_PLUGINS:?set OLD_PLUGINS to a copy of target/plugins made before the MIME view}"
REPS="${REPS:-5}" MSGS="${MSGS:-1000}" SESSIONS="${SESSIONS:-10}"
for f in "$BIN" "$NEW_PLUGINS/disclaimer.wasm" "$OLD_PLUGINS/disclaimer.wasm" /usr/sbin/smtp-source /usr/sbin/smtp-sink; do
  [ -e "$f" ] || { log "missing $f (see the top of this script)"; exit 1; }
done
STAMP="$(date +%Y%m%d-%H%M%S)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/wasmtp-mime.XXXXXX")"
OUT="$HERE/results/mime-$STAMP.md"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP_STATE:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- the message
python3 - "$WORK/msg.eml" <<'EOF'
import base64, random, sys
random.seed(15)
line = "The quick brown fox jumps over the lazy dog: a multipart benchmark line.\r\n"
text = line * (8192 // len(line))
html = "<html><body>" + "<p>" + line.strip() + "</p>\r\n" * (8192 // (len(line) + 9)) + "</body></html>\r\n"
pdf = bytes(random.getrandbits(8) for _ in range(67 * 1024))
b64 = base64.encodebytes(pdf).decode().replace("\n", "\r\n")
msg = ("From: Alice <a@example.com>\r\nTo: b@example.com\r\nSubject: quarterly report\r\n"
       "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <mime-bench@example.com>\r\n"
       "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
       "--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
       "--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + text +
       "--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + html +
       "--alt--\r\n"
       "--outer\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
       "Content-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 +
       "--outer--\r\n")
out = msg.replace("\r\n", "\n")  # smtp-source -F adds CRLF per line
open(sys.argv[1], "w").write(out)
print(f"message: {len(msg)} octets", file=sys.stderr)
EOF

# ---------------------------------------------------------------- sink and gateways
(cd "$WORK" && exec /usr/sbin/smtp-sink -u nobody 127.0.0.1:2585 1000) > "$WORK/sink.log" 2>&1 &
PIDS+=($!)

# The shipped chain with its plugins taken from DIR, on PORT, forwarding to the sink.
gateway_config() { # DIR PORT
  sed -e "s|@ROOT@/target/plugins/|$1/|" -e "s|@ROOT@|$ROOT|g" \
    -e "s|^address = \"127\.0\.0\.1:[0-9]*\"|address = \"127.0.0.1:$2\"|" \
    -e "s|^listen = \"127\.0\.0\.1:[0-9]*\"|listen = \"127.0.0.1:$(($2 + 7000))\"|" \
    -e "s|^upstreams = .*|upstreams = [\"127.0.0.1:2585\"]|" \
    "$HERE/configs/wasmtp-rust.toml"
  printf '\n[limits]\nmemory_budget = 0\n'
}
gateway_config "$OLD_PLUGINS" 2586 > "$WORK/before.toml"
gateway_config "$NEW_PLUGINS" 2587 > "$WORK/after.toml"

declare -A PORT=([before]=2586 [after]=2587) GWPID=()
for v in before after; do
  # each gateway in its own folder: its own spool and control socket
  mkdir -p "$WORK/$v"
  (cd "$WORK/$v" && "$BIN" check-config --config "$WORK/$v.toml" > /dev/null)
  (cd "$WORK/$v" && exec "$BIN" run --config "$WORK/$v.toml") > "$WORK/$v.log" 2>&1 &
  GWPID[$v]=$!
  PIDS+=($!)
done
for v in before after; do
  for _ in $(seq 1 900); do
    (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$v]}") 2>/dev/null && break
    sleep 0.2
  done
done
log "gateways up: before pid ${GWPID[before]}, after pid ${GWPID[after]}"

cpu_ms() { awk '{print ($14 + $15) * 1000 / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
load() { # VARIANT N -> "rate cpu_ms_per_msg rc"
  local v=$1 n=$2 t0 t1 c0 c1 rc=0
  c0=$(cpu_ms "${GWPID[$v]}")
  t0=$(date +%s.%N)
  /usr/sbin/smtp-source -s "$SESSIONS" -m "$n" -M bench.client -f a@example.com -t b@example.com \
    -F "$WORK/msg.eml" "127.0.0.1:${PORT[$v]}" 2>> "$WORK/source-$v.err" || rc=$?
  t1=$(date +%s.%N)
  c1=$(cpu_ms "${GWPID[$v]}")
  awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" -v rc="$rc" \
    'BEGIN { printf "%.0f %.3f %d\n", n / (b - a), (d - c) / n, rc }'
}

for v in before after; do load "$v" 100 > /dev/null; done  # warm-up: compile, pools
RESULTS="$WORK/results.txt"
: > "$RESULTS"
for rep in $(seq 1 "$REPS"); do
  for v in before after; do
    r=$(load "$v" "$MSGS")
    log "rep $rep $v: $r (msg/s, gateway CPU ms/msg, smtp-source rc)"
    echo "$v $r" >> "$RESULTS"
  done
done
for v in before after; do
  python3 "$HERE/scrape.py" "http://127.0.0.1:$((PORT[$v] + 7000))/metrics" "$WORK/$v.prom"
done

python3 - "$RESULTS" "$WORK/before.prom" "$WORK/after.prom" "$OUT" "$SESSIONS" "$MSGS" "$REPS" "$(stat -c %s "$WORK/msg.eml")" <<'EOF'
import re, statistics, sys
results, before_prom, after_prom, out, sessions, msgs, reps, size = sys.argv[1:]
rows = {}
for line in open(results):
    v, rate, cpu, rc = line.split()
    rows.setdefault(v, []).append((float(rate), float(cpu), int(rc)))
def hook_sums(path):
    """Seconds spent per plugin at data-post (histogram sums)."""
    sums = {}
    for line in open(path):
        m = re.match(r'wasmtp_plugin_hook_duration_seconds_(sum|count)\{(.*)\} (\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if labels.get("hook") != "data-post":
            continue
        sums.setdefault(labels.get("plugin", "?"), {})[m.group(1)] = float(m.group(3))
    return sums
lines = [f"# MIME view: the shipped Rust chain on a {int(size) // 1024} KiB multipart message "
         f"(text, HTML, base64 PDF): {sessions} sessions, {msgs} messages per run, {reps} interleaved runs, "
         "new connection per message, same gateway binary",
         "", "| content plugins | msg/s (median) | runs | gateway CPU ms/msg (median) | every run rc 0 |", "|---|---|---|---|---|"]
for v, label in (("before", "before: each parses the message itself"), ("after", "after: the host's MIME view")):
    rs = rows.get(v, [])
    ok = all(rc == 0 for _, _, rc in rs)
    lines.append(f"| {label} | {statistics.median(r for r, _, _ in rs):.0f} | {', '.join(f'{r:.0f}' for r, _, _ in rs)} | "
                 f"{statistics.median(c for _, c, _ in rs):.3f} | {'yes' if ok else 'NO'} |")
b, a = (statistics.median(r for r, _, _ in rows[v]) for v in ("before", "after"))
bc, ac = (statistics.median(c for _, c, _ in rows[v]) for v in ("before", "after"))
lines += ["", f"after/before: {a / b:.2f}x msg/s, {ac / bc:.2f}x CPU per message", "",
          "| plugin (data-post) | before: mean µs | after: mean µs |", "|---|---|---|"]
bs, as_ = hook_sums(before_prom), hook_sums(after_prom)
for plugin in sorted(set(bs) | set(as_)):
    def mean(d):
        s = d.get(plugin, {})
        return f"{s['sum'] / s['count'] * 1e6:.0f}" if s.get("count") else "-"
    lines.append(f"| {plugin} | {mean(bs)} | {mean(as_)} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
log "wrote $OUT"

#!/usr/bin/env bash
# The two release builds side by side (issue 17 item 6): the glibc build
# (target/release/wasmtp, the system allocator) and the static build of
# `cargo xtask dist` (x86_64-unknown-linux-musl with mimalloc), each in
# forward mode with no plugins and with the Rust chain
# (bench/configs/wasmtp.toml, wasmtp-rust.toml), interleaved in the same
# run against smtp-sink (bench/peers.sh). Writes
# bench/results/dist-STAMP.md.
#
#   cargo build --release
#   cargo build --release --target x86_64-unknown-linux-musl --features mimalloc --bin wasmtp
#   cargo xtask plugins
#   bash bench/dist.sh            # NO_INSTALL=1 once the peers are installed
#
# Knobs: LOADS="10:1024 50:1024" REPS=3 MSGS=3000; GLIBC_BIN, MUSL_BIN.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

GLIBC_BIN="${GLIBC_BIN:-$ROOT/target/release/wasmtp}"
MUSL_BIN="${MUSL_BIN:-$ROOT/target/x86_64-unknown-linux-musl/release/wasmtp}"
for b in "$GLIBC_BIN" "$MUSL_BIN"; do
  [ -x "$b" ] || { log "missing $b (see the build commands at the top of this script)"; exit 1; }
done
WORK="$ROOT/target/bench/dist"
RESULTS_DIR="$HERE/results"
mkdir -p "$WORK" "$RESULTS_DIR"
STAMP="$(date +%Y%m%d-%H%M%S)"

PEERS_DIR_FOUND=""
for d in "${PEERS_DIR:-}" "$ROOT/../shared/bench/peers" "$ROOT/../../shared/bench/peers"; do
  if [ -n "$d" ] && [ -f "$d/peerbench.py" ]; then PEERS_DIR_FOUND="$(cd "$d" && pwd)"; break; fi
done
[ -n "$PEERS_DIR_FOUND" ] || { log "shared/bench/peers not found (set PEERS_DIR)"; exit 1; }
export PEERS_DIR="$PEERS_DIR_FOUND"
if [ "${NO_INSTALL:-0}" != 1 ]; then
  INSTALL_ONLY=1 MAIN_LOADS=0 bash "$HERE/run.sh"
fi

# name|port|mode|command, one per build and config, on ports 2561-2564
VARIANTS=""
ORDER="sink"
port=2561
for cfg in wasmtp wasmtp-rust; do
  for build in glibc musl; do
    bin=$GLIBC_BIN
    [ "$build" = musl ] && bin=$MUSL_BIN
    name="$cfg-$build"
    out="$WORK/$name.toml"
    # own listener and metrics ports; no memory budget: each DATA reserves
    # max_message_size (35 MiB) of the default 1 GiB, which caps concurrent
    # DATA at 29 and would turn 50 sessions away with 452 4.3.1
    sed -e "s|@ROOT@|$ROOT|g" \
        -e "s|^address = \"127\.0\.0\.1:[0-9]*\"|address = \"127.0.0.1:$port\"|" \
        -e "s|^listen = \"127\.0\.0\.1:[0-9]*\"|listen = \"127.0.0.1:$((port + 7000))\"|" \
        "$HERE/configs/$cfg.toml" > "$out"
    grep -q '^\[limits\]' "$out" && { log "$cfg.toml has [limits]: edit this script"; exit 1; }
    printf '\n[limits]\nmemory_budget = 0\n' >> "$out"
    (cd "$WORK" && "$bin" check-config --config "$out" > /dev/null)
    label="$build"
    [ "$build" = musl ] && label="musl static + mimalloc"
    [ "$cfg" = wasmtp-rust ] && label="$label, Rust chain" || label="$label, no plugins"
    VARIANTS+="$name|$port|$label|$bin run --config $out"$'\n'
    ORDER+=" $name"
    port=$((port + 1))
  done
done

log "builds: $GLIBC_BIN ($(du -m "$GLIBC_BIN" | cut -f1) MB), $MUSL_BIN ($(du -m "$MUSL_BIN" | cut -f1) MB)"
STAMP="$STAMP-dist" GW_VARIANTS="$VARIANTS" PEERS="$ORDER" \
  LOADS="${LOADS:-10:1024 50:1024}" REPS="${REPS:-3}" MSGS="${MSGS:-3000}" MSGS_sink="${MSGS:-3000}" \
  RESULTS_DIR="$RESULTS_DIR" START_WAIT=180 bash "$HERE/peers.sh"

python3 - "$RESULTS_DIR/run-$STAMP-dist.jsonl" "$RESULTS_DIR/dist-$STAMP.md" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["peer"], r["mode"], r["sessions"], r["size"]), []).append(r)
out = ["| target | build | load | msg/s (median of reps) | CPU ms/msg | peak RSS kB |", "|---|---|---|---|---|---|"]
for (peer, mode, s, size), rs in sorted(by.items(), key=lambda kv: (kv[0][2], kv[0][3], kv[0][0])):
    ok = [r for r in rs if r["src_rc"] == 0 and r["delivered"] == r["msgs"]]
    if not ok:
        out.append(f"| {peer} | {mode} | {s}x{size} | failed | | |")
        continue
    rate = statistics.median(r["accept_rate"] for r in ok)
    cpu = statistics.median(float(r["srv_cpu_ms"]) for r in ok)
    rss = max(int(r["peak_rss_kb"]) for r in ok)
    out.append(f"| {peer} | {mode} | {s} sessions x {size} B | {rate:.0f} | {cpu:.3f} | {rss} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
log "wrote $RESULTS_DIR/dist-$STAMP.md"

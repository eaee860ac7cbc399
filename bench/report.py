#!/usr/bin/env python3
"""Write bench/RESULTS.md from one bench/run.sh run.

  report.py --results bench/results/run-STAMP.jsonl [--idle idle-STAMP.json]
            [--skipped "variant: reason" ...] --wasmtp-bin PATH --out bench/RESULTS.md

Medians over the repetitions of each (target, load); ratios of every gateway
variant to the sink and to each peer under the same load. Standard library only.
"""
import argparse
import re
import json
import os
import platform
import statistics
import subprocess
import time

PEERS = ["postfix", "haraka", "haraka_nodelay", "qpsmtpd"]
PEER_TITLE = {"postfix": "Postfix", "haraka": "Haraka", "haraka_nodelay": "Haraka+nodelay",
              "qpsmtpd": "qpsmtpd", "sink": "smtp-sink"}


def sh(*cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    except OSError:
        pass
    distro = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu or platform.machine()}), {mem_gib:.0f} GiB, "
            f"{distro or platform.system()}, kernel {platform.release()}")


def versions(a):
    rev = sh("git", "-C", a.root, "rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if sh("git", "-C", a.root, "status", "--porcelain",
                                                  "--untracked-files=no") else ""
    haraka = ""
    try:
        with open(os.path.join(a.haraka_dir, "node_modules/Haraka/package.json")) as f:
            haraka = json.load(f).get("version", "")
    except (OSError, ValueError):
        pass
    parts = [
        f"wasmtp {rev}{dirty} (release build, {sh('rustc', '--version')})",
        f"Postfix {sh('/usr/sbin/postconf', '-dh', 'mail_version') or '?'}",
        f"qpsmtpd {sh('dpkg-query', '-W', '-f=${Version}', 'qpsmtpd') or '?'}",
        f"Haraka {haraka or '?'} (node {sh('node', '--version') or '?'})",
    ]
    return ", ".join(parts)


def load_rows(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


def key(r):
    return (r["sessions"], r["size"], r["reuse"])


def load_label(k):
    s, size, reuse = k
    sz = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
    return s, sz, "reuse" if reuse else "new"


def mem(kb):
    return f"{kb / 1024:.0f} MB" if kb >= 10240 else f"{kb / 1024:.1f} MB"


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["peer"], key(r)), []).append(r)
    out = {}
    for (peer, k), g in groups.items():
        acc = [r["accept_rate"] for r in g]
        out[(peer, k)] = {
            "n": len(g),
            "mode": g[0]["mode"],
            "acc": statistics.median(acc),
            "min": min(acc),
            "max": max(acc),
            "e2e": statistics.median(r["e2e_rate"] for r in g),
            "cpu": statistics.median(r["srv_cpu_ms"] for r in g),
            "rss": max(r["peak_rss_kb"] for r in g),
            "pss": max(r["peak_pss_kb"] for r in g),
            "other": statistics.median(r["other_cpu"] for r in g),
            "ok": all(r["src_rc"] == 0 and r["delivered"] == r["msgs"] for r in g),
            "msgs": g[0]["msgs"],
        }
    return out


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "–"


PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
PROM_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def load_prom(path):
    """{(name, ((label, value), ...)): float} of one Prometheus text scrape."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            m = PROM_LINE.match(line.strip())
            if not m:
                continue
            labels = tuple(sorted(PROM_LABEL.findall(m.group(2) or "")))
            try:
                out[(m.group(1), labels)] = float(m.group(3))
            except ValueError:
                pass
    return out


def quantile(buckets, q):
    """histogram_quantile: linear interpolation inside the bucket holding rank q."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if le == float("inf"):
                return lower
            inside = cum - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cum
    return lower


def histograms(prom, name, key_labels):
    """{key: {"count", "mean", "p50", "p99"}} of one histogram, keyed by key_labels."""
    res = {}
    for (metric, labels), v in prom.items():
        d = dict(labels)
        key = tuple(d.get(k, "") for k in key_labels)
        e = res.setdefault(key, {"buckets": []})
        if metric == name + "_bucket":
            le = float("inf") if d.get("le") == "+Inf" else float(d.get("le", "nan"))
            e["buckets"].append((le, v))
        elif metric == name + "_count":
            e["count"] = v
        elif metric == name + "_sum":
            e["sum"] = v
    for e in res.values():
        if e.get("count"):
            e["mean"] = e.get("sum", 0) / e["count"]
            e["p50"] = quantile(e["buckets"], 0.5)
            e["p99"] = quantile(e["buckets"], 0.99)
    return {k: e for k, e in res.items() if e.get("count")}


def us(v):
    return "–" if v is None else f"{v * 1e6:.1f}"


def hook_latency_section(metrics_dir, variants, names):
    """Markdown lines: per-plugin per-hook latency from the gateway's own timing."""
    L = []
    for v in variants:
        path = os.path.join(metrics_dir, f"{v}.prom")
        if not os.path.exists(path):
            continue
        prom = load_prom(path)
        hooks = histograms(prom, "wasmtp_plugin_hook_duration_seconds", ("plugin", "hook"))
        inst = histograms(prom, "wasmtp_plugin_instantiate_duration_seconds", ("plugin",))
        if not hooks:
            continue
        L.append(f"**{names.get(v, v)}**")
        L.append("")
        L.append("| plugin | call | calls | p50 µs | p99 µs | mean µs |")
        L.append("|---|---|---|---|---|---|")
        for (plugin,), e in sorted(inst.items()):
            L.append(f"| {plugin} | instantiation + init | {e['count']:.0f} | {us(e.get('p50'))} | "
                     f"{us(e.get('p99'))} | {us(e.get('mean'))} |")
        for (plugin, hook), e in sorted(hooks.items()):
            L.append(f"| {plugin} | {hook} | {e['count']:.0f} | {us(e.get('p50'))} | "
                     f"{us(e.get('p99'))} | {us(e.get('mean'))} |")
        L.append("")
    return L


def services_section(results, metrics_dir, root):
    """Markdown lines of the host-services stage (issue 13): dnsbl + greylist +
    ratelimit against the no-plugin forward in the same run, and their hooks'
    latency. Empty when the stage did not run."""
    if not results or not os.path.exists(results):
        return []
    ss = summarize(load_rows(results))
    L = []
    loads = sorted({k for (_, k) in ss})
    for k in loads:
        none = ss.get(("wasmtp", k))
        svc = ss.get(("wasmtp-services", k))
        if not none or not svc:
            continue
        s_, sz, conn = load_label(k)
        L.append(f"Load: {s_} sessions, {sz}, {conn} connection per message, median of "
                 f"{svc['n']} interleaved runs (`bench/configs/wasmtp-services.toml`: "
                 "dnsbl at RCPT against `bench/dnsd.py` on 127.0.0.1:2553, the client not "
                 "listed; greylist (Python) on an already-passed triplet in the embedded "
                 "store; ratelimit counting every message in the embedded store). "
                 "Target: ≥ 0.5 × the no-plugin forward.")
        L.append("")
        L.append("| variant | msgs/s | min–max | CPU ms/msg | peak RSS | delivered all |")
        L.append("|---|---|---|---|---|---|")
        for name, e in (("no plugins (`wasmtp`)", none), ("dnsbl + greylist + ratelimit", svc)):
            L.append(f"| {name} | {e['acc']:.0f} | {e['min']:.0f}–{e['max']:.0f} | "
                     f"{e['cpu']:.3f} | {mem(e['rss'])} | {'yes' if e['ok'] else 'no'} |")
        L.append("")
        verdict = "met" if svc["acc"] >= 0.5 * none["acc"] else "NOT met"
        L.append(f"Services / no plugins: {ratio(svc['acc'], none['acc'])} "
                 f"(target ≥ 0.5×: {verdict}).")
        L.append("")
    if metrics_dir and os.path.isdir(metrics_dir):
        lat = hook_latency_section(metrics_dir, ["wasmtp-services"], {
            "wasmtp-services": "dnsbl + greylist + ratelimit (the whole stage, warm-up included)"})
        if lat:
            L.append("Per-hook wall time from the gateway's `[metrics]` (see the latency "
                     "section for how it is measured):")
            L.append("")
            L += lat
    return L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results")
    ap.add_argument("--services-results", help="JSON lines of the host-services stage")
    ap.add_argument("--services-only", action="store_true",
                    help="write only the host-services section to --out")
    ap.add_argument("--idle")
    ap.add_argument("--lang-results", help="JSON lines of the plugin-cost stage")
    ap.add_argument("--skipped", action="append", default=[])
    ap.add_argument("--wasmtp-bin", default="")
    ap.add_argument("--haraka-dir", default="")
    ap.add_argument("--root", default=".")
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics-dir", default="", help="Prometheus scrapes of the gateway variants")
    a = ap.parse_args()

    if a.services_only:
        L = ["## Host services: dnsbl + greylist + ratelimit", ""]
        L += services_section(a.services_results, a.metrics_dir, a.root) or ["Not measured."]
        with open(a.out, "w") as f:
            f.write("\n".join(L) + "\n")
        return
    if not a.results:
        ap.error("--results is required")
    rows = load_rows(a.results)
    s = summarize(rows)
    targets = []
    for r in rows:
        if r["peer"] not in targets:
            targets.append(r["peer"])
    gateways = [t for t in targets if t not in PEERS and t != "sink"]
    peers = [p for p in PEERS if p in targets]
    loads = []
    for r in rows:
        if key(r) not in loads:
            loads.append(key(r))
    reps = max((v["n"] for v in s.values()), default=0)

    L = []
    L.append("# wasmtp benchmark results")
    L.append("")
    L.append(f"Measured by `cargo xtask bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             f" ({a.elapsed / 60:.0f} min end to end, builds included).")
    L.append("")
    L.append(f"- Machine: {machine()}. Load generator, sink and servers share these cores.")
    L.append(f"- Versions: {versions(a)}.")
    L.append("- Load: Postfix `smtp-source -s SESSIONS -m MSGS -l SIZE [-d]` (no pipelining) "
             "against each target on 127.0.0.1; every relay forwards to `smtp-sink` on :2525. "
             "Messages per run: " + ", ".join(
                 f"{PEER_TITLE.get(t, t)} {next(v['msgs'] for (p, _), v in s.items() if p == t)}"
                 for t in targets) + ".")
    L.append(f"- Median of {reps} repetitions per cell; the rounds interleave all targets. "
             "`other%` is CPU used by unrelated processes during the run (a busy machine "
             "lowers every figure of that run).")
    L.append("- Raw data: `bench/results/" + os.path.basename(a.results) + "` "
             "(one JSON line per run; `python3 ../shared/bench/peers/peerbench.py table FILE`).")
    L.append("")

    L.append("## The gateway against the sink and the peers")
    L.append("")
    L.append("msgs/s = accepted by the gateway, as the client saw it; e2e/s = counted by the sink. "
             "×X = gateway msgs/s ÷ X's msgs/s under the same load.")
    L.append("")
    hdr = ["variant", "sessions", "size", "conn", "msgs/s", "e2e/s", "CPU ms/msg", "peak RSS",
           "× sink"] + [f"× {PEER_TITLE[p]}" for p in peers] + ["other%", "all delivered"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for g in gateways:
        for k in loads:
            v = s.get((g, k))
            if not v:
                continue
            sess, sz, conn = load_label(k)
            sink = s.get(("sink", k))
            cells = [f"{g} ({v['mode']})", str(sess), sz, conn, f"{v['acc']:.0f}", f"{v['e2e']:.0f}",
                     f"{v['cpu']:.2f}", mem(v["rss"]), ratio(v["acc"], sink["acc"]) if sink else "–"]
            for p in peers:
                pv = s.get((p, k))
                cells.append(ratio(v["acc"], pv["acc"]) if pv else "–")
            cells += [f"{v['other']:.0f}", "yes" if v["ok"] else "NO"]
            L.append("| " + " | ".join(cells) + " |")
    if not gateways:
        L.append("| (no gateway variant ran) |" + " |" * (len(hdr) - 1))
    L.append("")

    L.append("## Targets of issue 6")
    L.append("")
    chain = "wasmtp-rust" if "wasmtp-rust" in gateways else None
    if chain:
        L.append("Forward mode with the Rust example chain: at least 0.5 × the raw sink rate and "
                 "at least 5 × Postfix, under the same load.")
        L.append("")
        L.append("A relay forwards every message to the sink, so it cannot beat the sink's own "
                 "rate: where 5 × Postfix is above the sink's rate, the last column says so.")
        L.append("")
        L.append("| load | msgs/s | × sink | ≥ 0.5 | × Postfix | ≥ 5 |")
        L.append("|---|---|---|---|---|---|")
        for k in loads:
            v, sink, pf = s.get((chain, k)), s.get(("sink", k)), s.get(("postfix", k))
            if not v:
                continue
            sess, sz, conn = load_label(k)
            rs = v["acc"] / sink["acc"] if sink else None
            rp = v["acc"] / pf["acc"] if pf else None
            pf_verdict = "met" if rp and rp >= 5 else ("not met" if rp is not None else "–")
            if rp is not None and rp < 5 and sink and 5 * pf["acc"] > sink["acc"]:
                pf_verdict = (f"not met; out of reach: 5 × Postfix = {5 * pf['acc']:.0f} msgs/s, "
                              f"above the sink's own {sink['acc']:.0f}")
            L.append(f"| {sess} × {sz}, {conn} | {v['acc']:.0f} | "
                     f"{f'{rs:.2f}' if rs is not None else '–'} | {'met' if rs and rs >= 0.5 else ('not met' if rs is not None else '–')} | "
                     f"{f'{rp:.2f}' if rp is not None else '–'} | {pf_verdict} |")
    else:
        L.append("The Rust-chain variant did not run, so the throughput targets were not checked.")
    idle0 = None
    if a.idle and os.path.exists(a.idle):
        with open(a.idle) as f:
            idle0 = json.load(f)
    L.append("")
    if idle0:
        kb = idle0["rss_idle_kb"]
        L.append(f"Idle RSS: the gateway with the {idle0['variant']} config, started fresh and "
                 f"holding no connection (the idle test's \"RSS before\"): {mem(kb)}; "
                 f"target ≤ 64 MB: {'met' if kb <= 64 * 1024 else 'not met'}.")
    else:
        L.append("Idle RSS: not measured in this run (the idle test did not run).")
    by_variant = {}
    for r in rows:
        if r["peer"] in gateways:
            by_variant.setdefault(r["peer"], []).append(r["idle_rss_kb"])
    if by_variant:
        L.append("")
        L.append("RSS between runs (no connection open, after earlier loads: warm pooled instances "
                 "and allocator caches included), min–max per variant: " +
                 "; ".join(f"{v} {mem(min(x))}–{mem(max(x))}" for v, x in sorted(by_variant.items())) + ".")
    L.append("")

    L.append("## Every target")
    L.append("")
    hdr = ["target", "mode", "sessions", "size", "conn", "n", "msgs/s", "min–max", "e2e/s",
           "CPU ms/msg", "peak RSS", "peak PSS", "other%", "all delivered"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for t in targets:
        for k in loads:
            v = s.get((t, k))
            if not v:
                continue
            sess, sz, conn = load_label(k)
            L.append("| " + " | ".join([
                PEER_TITLE.get(t, t), v["mode"], str(sess), sz, conn, str(v["n"]),
                f"{v['acc']:.0f}", f"{v['min']:.0f}–{v['max']:.0f}", f"{v['e2e']:.0f}",
                f"{v['cpu']:.2f}", mem(v["rss"]), mem(v["pss"]), f"{v['other']:.0f}",
                "yes" if v["ok"] else "NO"]) + " |")
    L.append("")

    L.append("## Idle connections")
    L.append("")
    if a.idle and os.path.exists(a.idle):
        with open(a.idle) as f:
            i = json.load(f)
        L.append("Sessions opened in batches, each after its greeting and EHLO, then held "
                 f"{i['hold_s']:.0f} s. RSS of the gateway process, sampled.")
        L.append("")
        L.append("| variant | wanted | established | still open after hold | RSS before | RSS with them | RSS per connection |")
        L.append("|---|---|---|---|---|---|---|")
        L.append(f"| {i['variant']} | {i['wanted']} | {i['established']} | {i['alive_after_hold']} | "
                 f"{mem(i['rss_idle_kb'])} | {mem(i['rss_loaded_kb'])} | {i['rss_per_conn_kb']:.1f} KiB |")
    else:
        L.append("Not measured in this run.")
    L.append("")

    L.append("## Plugin cost per language")
    L.append("")
    lang_done = False
    if a.lang_results and os.path.exists(a.lang_results):
        ls = summarize(load_rows(a.lang_results))
        k = (10, 1024, False)
        none = ls.get(("wasmtp", k))
        langs = []
        for peer, kk in sorted(ls):
            if kk == k and peer.startswith("lang-") and peer.endswith("-percon"):
                langs.append(peer[len("lang-"):-len("-percon")])
        if none and langs:
            lang_done = True
            n = none["n"]
            L.append("One plugin of each language alone in the chain, 10 sessions, 1 KiB, a new "
                     f"connection per message, median of {n} interleaved runs "
                     "(`bench/configs/lang/`). CPU is the gateway's whole process per message. "
                     "*Instantiation + init* = CPU per-connection − CPU pooled (every message "
                     "opens a connection, so a per-connection instance is created and its "
                     "`init` run once per message). *Hooks* = CPU pooled − CPU with no plugin: "
                     "what the plugin's hook calls cost per message on a warm instance.")
            L.append("")
            L.append("| language (plugin) | msgs/s none / pooled / per-conn | CPU ms/msg none | pooled | per-connection | instantiation + init | hooks per message | peak RSS pooled / per-conn |")
            L.append("|---|---|---|---|---|---|---|---|")
            names = {"rust": "Rust (rcpt-allowlist)", "c": "C (fast-guard)",
                     "js": "JavaScript (header-rules)", "python": "Python (spam-score)"}
            for lang in ["rust", "c", "js", "python"] + [x for x in langs if x not in names]:
                pc = ls.get((f"lang-{lang}-percon", k))
                po = ls.get((f"lang-{lang}-pooled", k))
                if not pc or not po:
                    continue
                inst = (pc["cpu"] - po["cpu"]) * 1000
                hooks = (po["cpu"] - none["cpu"]) * 1000
                L.append(f"| {names.get(lang, lang)} | {none['acc']:.0f} / {po['acc']:.0f} / {pc['acc']:.0f} | "
                         f"{none['cpu']:.3f} | {po['cpu']:.3f} | {pc['cpu']:.3f} | {inst:.0f} µs | "
                         f"{hooks:.0f} µs | {mem(po['rss'])} / {mem(pc['rss'])} |")
            L.append("")
    if not lang_done:
        L.append("Not measured in this run.")
    L.append("")

    L.append("## Host services: dnsbl + greylist + ratelimit")
    L.append("")
    L += services_section(a.services_results, a.metrics_dir, a.root) or [
        "Not measured in this run.", ""]

    L.append("## Per-hook latency (the gateway's own timing)")
    L.append("")
    lat = []
    if a.metrics_dir and os.path.isdir(a.metrics_dir):
        lang_names = {}
        for lang, label in [("rust", "Rust rcpt-allowlist"), ("c", "C fast-guard"),
                            ("js", "JavaScript header-rules"), ("python", "Python spam-score")]:
            lang_names[f"lang-{lang}-pooled"] = f"{label}, pooled instances"
            lang_names[f"lang-{lang}-percon"] = f"{label}, an instance per connection"
        lang_variants = [f"lang-{l}-{m}" for l in ("rust", "c", "js", "python")
                         for m in ("pooled", "percon")]
        lat += hook_latency_section(a.metrics_dir, lang_variants, lang_names)
        lat += hook_latency_section(a.metrics_dir, ["wasmtp-rust", "wasmtp-mixed"], {
            "wasmtp-rust": "Rust chain (every load of the main table, 1 KiB and 100 KiB together)",
            "wasmtp-mixed": "Mixed chain (every load of the main table)"})
    if lat:
        L.append("Wall time of each guest call as the gateway records it (`[metrics]`, "
                 "histograms `wasmtp_plugin_hook_duration_seconds` and "
                 "`wasmtp_plugin_instantiate_duration_seconds`), scraped when a stage's "
                 "loads ended, so over the whole stage (warm-up included). p50 and p99 are "
                 "interpolated inside the histogram's buckets (five per decade, like "
                 "Prometheus' `histogram_quantile`: within about ±25 %); the mean is exact. "
                 "They include calls that waited for the CPU on this 2-core machine shared "
                 "with the load generator and the sink. Plugin-cost stage first (one load: 10 "
                 "sessions, 1 KiB, new connection per message), then the chains. Raw scrapes: "
                 f"`{os.path.relpath(a.metrics_dir, a.root)}/`.")
        L.append("")
        L += lat
    else:
        L.append("Not measured in this run.")
        L.append("")

    if a.skipped:
        L.append("## Not measured in this run")
        L.append("")
        for sk in a.skipped:
            L.append(f"- Variant {sk}")
        L.append("")
    L.append("Reproduce: `cargo xtask bench` (knobs: see the header of `bench/run.sh`, e.g. "
             "`REPS=3 LOADS=\"10:1024 50:102400\" cargo xtask bench`).")
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()

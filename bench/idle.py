#!/usr/bin/env python3
"""Hold many idle SMTP sessions open (after EHLO) and measure the server's RSS.

  idle.py --target 127.0.0.1:PORT --conns 10000 --pid GATEWAY_PID

Opens the connections in batches, reads each greeting, sends EHLO and reads
the whole reply, then samples the RSS of the server's process tree, holds the
sessions for --hold seconds, samples again, and closes them. Prints one JSON
object: connections established, RSS before/after, RSS per connection.
Only 127.0.0.1 targets on ports 2500-2599 are accepted. Standard library only.
"""
import argparse
import json
import os
import resource
import selectors
import socket
import sys
import time

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def tree(root):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_kb(root):
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except OSError:
            pass
    return total


def open_batch(addr, n, timeout):
    """Connect n sockets, read greeting, EHLO, read the final 250 line.
    Returns (established sockets, error count)."""
    sel = selectors.DefaultSelector()
    state = {}
    errors = 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect_ex(addr)
        except OSError:
            s.close()
            errors += 1
            continue
        state[s] = {"phase": "greet", "buf": b""}
        sel.register(s, selectors.EVENT_READ)
    done = []
    deadline = time.monotonic() + timeout
    while state and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            st = state[s]
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                del state[s]
                errors += 1
                continue
            st["buf"] += data
            # a reply is complete when its last line has a space after the code
            lines = st["buf"].split(b"\r\n")
            if len(lines) < 2:
                continue
            last = lines[-2]
            if len(last) < 4 or last[3:4] != b" ":
                continue
            code = last[:3]
            st["buf"] = b""
            if st["phase"] == "greet" and code == b"220":
                st["phase"] = "ehlo"
                s.sendall(b"EHLO idle.bench.client\r\n")
            elif st["phase"] == "ehlo" and code == b"250":
                sel.unregister(s)
                del state[s]
                done.append(s)
            else:
                sel.unregister(s)
                s.close()
                del state[s]
                errors += 1
    for s in list(state):
        sel.unregister(s)
        s.close()
        errors += 1
    sel.close()
    return done, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--hold", type=float, default=5.0)
    ap.add_argument("--variant", default="")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    if host != "127.0.0.1" or not 2500 <= int(port) <= 2599:
        sys.exit(f"refusing target {a.target}: only 127.0.0.1:2500-2599")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, a.conns + 1024) if hard != resource.RLIM_INFINITY else a.conns + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    addr = (host, int(port))

    # the server must be up and answering before the baseline is taken
    t_ready = time.monotonic() + 120
    while True:
        probe, _ = open_batch(addr, 1, 10)
        if probe:
            probe[0].close()
            break
        if time.monotonic() > t_ready:
            sys.exit("server did not answer EHLO")
        time.sleep(0.5)
    time.sleep(1.0)
    rss0 = rss_kb(a.pid)

    socks, errors = [], 0
    t0 = time.monotonic()
    while len(socks) < a.conns and errors < max(100, a.conns // 10):
        n = min(a.batch, a.conns - len(socks))
        got, err = open_batch(addr, n, 30)
        socks.extend(got)
        errors += err
    t_open = time.monotonic() - t0
    time.sleep(1.0)
    rss1 = rss_kb(a.pid)
    time.sleep(a.hold)
    rss2 = rss_kb(a.pid)
    # are they still open? a closed session would read EOF
    alive = 0
    for s in socks:
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                continue
        except BlockingIOError:
            alive += 1
            continue
        except OSError:
            continue
        alive += 1
    for s in socks:
        s.close()
    peak = max(rss1, rss2)
    per_conn = (peak - rss0) / max(1, len(socks))
    print(json.dumps({
        "variant": a.variant, "target": a.target, "wanted": a.conns,
        "established": len(socks), "alive_after_hold": alive, "errors": errors,
        "open_s": round(t_open, 2), "rss_idle_kb": rss0, "rss_loaded_kb": peak,
        "rss_per_conn_kb": round(per_conn, 1), "hold_s": a.hold,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }))


if __name__ == "__main__":
    main()

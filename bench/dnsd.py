#!/usr/bin/env python3
"""A tiny authoritative DNS server for the benchmark's DNSBL zone, on loopback.

bench/run.sh starts it for the services stage (dnsbl + greylist + ratelimit)
and stops it by PID. It answers UDP and TCP on one 127.0.0.1 port, for one
zone only: the A and TXT records given with --entry are answered, any other
name in the zone is NXDOMAIN (with the zone's SOA, so resolvers cache the
negative answer for --negative-ttl seconds), names outside the zone are
REFUSED. It never forwards anything anywhere.

    python3 bench/dnsd.py --port 2553 --zone bl.bench \
        --entry 2.0.0.127=127.0.0.2:"listed for testing"

--txt NAME=TEXT adds a TXT record at a full name inside the zone (the apex
too), split into 255-octet strings as DKIM keys need (the mail-auth stage:
SPF, DKIM and DMARC records).
"""

import argparse
import socket
import socketserver
import struct
import threading

QTYPE_A, QTYPE_SOA, QTYPE_TXT = 1, 6, 16


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def parse_question(msg):
    """(id, flags, qname lower-cased, qtype, end offset of the question) or None."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        return None
    pos, labels = 12, []
    while True:
        if pos >= len(msg):
            return None
        n = msg[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0 or pos + n > len(msg):
            return None
        labels.append(msg[pos:pos + n].decode("ascii", "replace").lower())
        pos += n
    if pos + 4 > len(msg):
        return None
    qtype, _qclass = struct.unpack("!HH", msg[pos:pos + 4])
    return qid, flags, ".".join(labels), qtype, pos + 4


class Zone:
    def __init__(self, zone, entries, ttl, negative_ttl, txts=()):
        self.zone = zone.strip(".").lower()
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        # name -> (ipv4, txt)
        self.entries = {}
        for e in entries:
            label, _, rest = e.partition("=")
            ip, _, txt = rest.partition(":")
            self.entries[f"{label.strip('.').lower()}.{self.zone}"] = (ip, txt.strip('"'))
        for t in txts:
            name, _, txt = t.partition("=")
            self.entries[name.strip(".").lower()] = (None, txt)

    def soa(self):
        mname, rname = encode_name("ns." + self.zone), encode_name("hostmaster." + self.zone)
        rdata = mname + rname + struct.pack("!IIIII", 1, 3600, 600, 86400, self.negative_ttl)
        return encode_name(self.zone) + struct.pack("!HHIH", QTYPE_SOA, 1, self.negative_ttl, len(rdata)) + rdata

    def answer(self, msg):
        q = parse_question(msg)
        if q is None:
            return None
        qid, flags, qname, qtype, end = q
        question = msg[12:end]
        rd = flags & 0x0100
        in_zone = qname == self.zone or qname.endswith("." + self.zone)

        def reply(rcode, answers=(), authority=()):
            hdr = struct.pack("!HHHHHH", qid, 0x8400 | rd | rcode, 1, len(answers), len(authority), 0)
            return hdr + question + b"".join(answers) + b"".join(authority)

        if not in_zone:
            return reply(5)  # REFUSED
        entry = self.entries.get(qname)
        if entry is None:
            return reply(3, authority=[self.soa()])  # NXDOMAIN
        ip, txt = entry
        owner = encode_name(qname)
        if qtype == QTYPE_A and ip:
            rdata = socket.inet_aton(ip)
            return reply(0, answers=[owner + struct.pack("!HHIH", QTYPE_A, 1, self.ttl, 4) + rdata])
        if qtype == QTYPE_TXT and txt:
            raw = txt.encode()
            rdata = b"".join(bytes([len(raw[i:i + 255])]) + raw[i:i + 255] for i in range(0, len(raw), 255))
            return reply(0, answers=[owner + struct.pack("!HHIH", QTYPE_TXT, 1, self.ttl, len(rdata)) + rdata])
        return reply(0, authority=[self.soa()])  # no data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--zone", required=True)
    ap.add_argument("--entry", action="append", default=[], help="LABEL=IP[:TXT]")
    ap.add_argument("--txt", action="append", default=[], help="NAME=TEXT (a full name in the zone)")
    ap.add_argument("--ttl", type=int, default=300)
    ap.add_argument("--negative-ttl", type=int, default=300)
    a = ap.parse_args()
    zone = Zone(a.zone, a.entry, a.ttl, a.negative_ttl, a.txt)

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            out = zone.answer(data)
            if out is not None:
                sock.sendto(out, self.client_address)

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self):
            while True:
                head = self.rfile.read(2)
                if len(head) < 2:
                    return
                (n,) = struct.unpack("!H", head)
                out = zone.answer(self.rfile.read(n))
                if out is None:
                    return
                self.wfile.write(struct.pack("!H", len(out)) + out)

    socketserver.ThreadingUDPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    udp = socketserver.ThreadingUDPServer(("127.0.0.1", a.port), Udp)
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", a.port), Tcp)
    udp.daemon_threads = tcp.daemon_threads = True
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    print(f"dnsd: zone {zone.zone} on 127.0.0.1:{a.port}", flush=True)
    udp.serve_forever()


if __name__ == "__main__":
    main()

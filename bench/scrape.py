#!/usr/bin/env python3
"""Save a gateway's Prometheus metrics: scrape.py URL FILE (exit 1 if unreachable)."""
import sys
import urllib.request

try:
    body = urllib.request.urlopen(sys.argv[1], timeout=5).read()
except OSError:
    sys.exit(1)  # no [metrics] in this variant's config
with open(sys.argv[2], "wb") as f:
    f.write(body)

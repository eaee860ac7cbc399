"""greylist: temporary refusal of unknown (client network, sender, recipient)
triplets, in the key-value store so that it outlives connections, restarts
and (with the Redis backend) is shared between gateways.

At RCPT a triplet seen for the first time gets ``451 4.7.1`` and is stored
as waiting; a retry before ``delay_s`` gets ``451 4.7.1`` again; the first
retry after the delay (and within ``retry_window_s`` of the first sight)
passes, and the triplet stays passed for ``pass_ttl_s`` (refreshed while it
is used). A client network with ``auto_allow_after`` passed triplets skips
greylisting for ``pass_ttl_s``. Authenticated and relay clients are never
greylisted. The plugin declines whatever passes: the chain and the relay
policy decide the rest.

State (bucket ``greylist`` by default, granted with ``kv = ["greylist"]``):
``t:<net>|<sender>|<recipient>`` holds ``wait <first-sight ms>`` or
``pass <last-refresh ms>``; ``c:<net>`` counts the network's passed triplets.
Transitions use compare-and-set, so two sessions (or gateways) retrying the
same triplet at once agree.
"""

import hashlib
import ipaddress
import time

import wasmtp
from wasmtp import kv

# Longest key kept readable; longer triplets are hashed.
MAX_PLAIN_KEY = 200
# Compare-and-set attempts before a contended triplet is answered 451.
CAS_ATTEMPTS = 4


def _seconds(config, key, default, minimum):
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number of seconds, got {value!r}")
    if value < minimum:
        raise ValueError(f"{key} must be at least {minimum}, got {value!r}")
    return value


def _prefix(config, key, default, top):
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"{key} must be an integer from 0 to {top}, got {value!r}")
    return value


def _now_ms():
    return int(time.time() * 1000)


class Greylist(wasmtp.Plugin):
    def init(self, config):
        self.delay_ms = int(_seconds(config, "delay_s", 300, 0) * 1000)
        self.retry_window_ms = int(_seconds(config, "retry_window_s", 2 * 86400, 1) * 1000)
        self.pass_ttl_ms = int(_seconds(config, "pass_ttl_s", 35 * 86400, 1) * 1000)
        if self.retry_window_ms <= self.delay_ms:
            raise ValueError("retry_window_s must be longer than delay_s")
        auto = config.get("auto_allow_after", 5)
        if isinstance(auto, bool) or not isinstance(auto, int) or auto < 0:
            raise ValueError(f"auto_allow_after must be an integer >= 0, got {auto!r}")
        self.auto_allow_after = auto
        self.v4_prefix = _prefix(config, "ipv4_prefix", 24, 32)
        self.v6_prefix = _prefix(config, "ipv6_prefix", 64, 128)
        bucket = config.get("bucket", "greylist")
        if not isinstance(bucket, str) or not bucket:
            raise ValueError("bucket must be a non-empty string")
        self.bucket = kv.Bucket(bucket)
        on_error = config.get("on_kv_error", "pass")
        if on_error not in ("pass", "tempfail"):
            raise ValueError(f'on_kv_error must be "pass" or "tempfail", got {on_error!r}')
        self.on_kv_error = on_error
        # A passed triplet's TTL is renewed when it is used after this long.
        self.refresh_ms = max(self.pass_ttl_ms // 10, 1000)
        # Client address -> its network: `ipaddress` costs more than the
        # rest of the hook in the component's interpreter, and a pooled
        # instance sees the same clients again and again.
        self._nets = {}

    # --- the hook ---------------------------------------------------------

    def rcpt(self, conn, txn, recipient, params):
        if conn.auth_user() is not None or conn.relay_client():
            return wasmtp.DECLINED
        net = self.network(conn.remote_ip())
        try:
            return self.check(net, txn.sender(), recipient)
        except kv.KvError as e:
            wasmtp.log.warn("greylist: key-value store failed", case=e.case, detail=e.detail or "")
            if self.on_kv_error == "tempfail":
                return wasmtp.deny_soft(451, "4.3.0", "Temporary failure, please try again later")
            return wasmtp.DECLINED

    # --- the policy -------------------------------------------------------

    def network(self, ip):
        """The client's network: /24 (IPv4) or /64 (IPv6) by default."""
        net = self._nets.get(ip)
        if net is None:
            net = self._network(ip)
            if len(self._nets) >= 4096:
                self._nets.clear()
            self._nets[ip] = net
        return net

    def _network(self, ip):
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return ip
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        prefix = self.v4_prefix if addr.version == 4 else self.v6_prefix
        return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))

    def triplet_key(self, net, sender, recipient):
        plain = f"t:{net}|{sender.lower() or '<>'}|{recipient.lower()}"
        if len(plain.encode("utf-8")) <= MAX_PLAIN_KEY:
            return plain
        return "t:" + hashlib.sha256(plain.encode("utf-8")).hexdigest()

    def check(self, net, sender, recipient):
        b = self.bucket
        client_key = f"c:{net}"
        if self.auto_allow_after > 0:
            passed = _int(b.get_text(client_key))
            if passed >= self.auto_allow_after:
                return wasmtp.DECLINED
        key = self.triplet_key(net, sender, recipient)
        for _ in range(CAS_ATTEMPTS):
            now = _now_ms()
            current = b.get(key)
            if current is None:
                if b.compare_and_set(key, None, f"wait {now}", self.retry_window_ms):
                    wasmtp.log.info("greylisted", net=net, sender=sender, recipient=recipient)
                    return self.greylisted(self.delay_ms)
                continue
            state, since = _parse(current)
            if state == "pass":
                if now - since >= self.refresh_ms:
                    b.compare_and_set(key, current, f"pass {now}", self.pass_ttl_ms)
                return wasmtp.DECLINED
            if state == "wait":
                waited = now - since
                if waited < self.delay_ms:
                    return self.greylisted(self.delay_ms - waited)
                if b.compare_and_set(key, current, f"pass {now}", self.pass_ttl_ms):
                    count = 0
                    if self.auto_allow_after > 0:
                        count = b.increment(client_key, 1, self.pass_ttl_ms)
                    wasmtp.log.info(
                        "greylist passed", net=net, sender=sender, recipient=recipient,
                        waited_s=waited // 1000, network_passes=count,
                    )
                    return wasmtp.DECLINED
                continue
            # Unreadable entry (written by something else): start over.
            b.set(key, f"wait {now}", self.retry_window_ms)
            return self.greylisted(self.delay_ms)
        # Other sessions kept changing the entry: let the client come back.
        return self.greylisted(self.delay_ms)

    def greylisted(self, remaining_ms):
        seconds = max(1, -(-remaining_ms // 1000))
        unit = "second" if seconds == 1 else "seconds"
        return wasmtp.deny_soft(451, "4.7.1", f"Greylisted, please try again in {seconds} {unit}")


def _int(text):
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def _parse(value):
    """("wait" | "pass" | "", milliseconds) from a stored entry."""
    try:
        state, ms = bytes(value).decode("ascii").split(" ", 1)
        return state, int(ms)
    except (UnicodeDecodeError, ValueError):
        return "", 0


Hooks = wasmtp.export(Greylist)

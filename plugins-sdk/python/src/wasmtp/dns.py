"""DNS lookups through the gateway's resolver (WIT interface ``dns``).

Granted per plugin with ``dns = true`` in its ``[[plugins]]`` entry; without
the grant every call raises :class:`Refused`. A lookup that gives no records
raises a subclass of :class:`DnsError` naming the WIT case, so a DNSBL can
tell "not listed" (:class:`NxDomain`) from trouble (:class:`Timeout`,
:class:`ServerFailure`)::

    from wasmtp import dns

    try:
        answer = dns.lookup("2.0.0.127.zen.example", "A")
    except dns.NxDomain:
        return wasmtp.DECLINED              # not listed
    except dns.DnsError as e:               # timeout, SERVFAIL, not granted...
        wasmtp.log.warn("dnsbl lookup failed", case=e.case, detail=e.detail)
        return wasmtp.DECLINED
    print(answer.records, answer.ttl)       # ['127.0.0.2'] 300

Records come as plain values: ``str`` for A, AAAA, PTR, CNAME and NS,
:class:`MxRecord` for MX, ``list[str]`` (the character-strings) for TXT.
"""

from dataclasses import dataclass
from typing import List, Optional, Union

from componentize_py_types import Err
from wit_world.imports import dns as _wit

__all__ = [
    "RecordType",
    "MxRecord",
    "Answer",
    "DnsError",
    "NxDomain",
    "NoData",
    "ServerFailure",
    "Timeout",
    "Refused",
    "Invalid",
    "lookup",
    "reverse",
    "addresses",
    "txt",
]

RecordType = _wit.RecordType
"""The record types: ``RecordType.A``, ``AAAA``, ``MX``, ``TXT``, ``PTR``, ``CNAME``, ``NS``."""


@dataclass(frozen=True)
class MxRecord:
    """One MX record."""

    preference: int
    """Lower is preferred."""
    exchange: str
    """The mail exchanger's name, without the trailing dot."""


Record = Union[str, MxRecord, List[str]]
"""One record: ``str`` (A, AAAA, PTR, CNAME, NS), :class:`MxRecord` or ``list[str]`` (TXT)."""


@dataclass(frozen=True)
class Answer:
    """A positive answer."""

    records: List[Record]
    """The records of the asked type, as plain values."""
    ttl: int
    """The smallest TTL of the records, in seconds."""


class DnsError(Exception):
    """A lookup gave no records. ``case`` is the WIT case name
    (``"nx-domain"``, ``"no-data"``, ``"server-failure"``, ``"timeout"``,
    ``"refused"``, ``"invalid"``); ``detail`` the host's text, if any."""

    case = "dns-error"

    def __init__(self, detail: Optional[str] = None) -> None:
        super().__init__(f"{self.case}: {detail}" if detail else self.case)
        self.detail = detail


class NxDomain(DnsError):
    """The name does not exist (NXDOMAIN): for a DNSBL, "not listed"."""

    case = "nx-domain"


class NoData(DnsError):
    """The name exists but has no record of this type."""

    case = "no-data"


class ServerFailure(DnsError):
    """The server failed or refused (SERVFAIL, REFUSED, a malformed answer)."""

    case = "server-failure"


class Timeout(DnsError):
    """No answer within ``[dns] timeout``."""

    case = "timeout"


class Refused(DnsError):
    """The plugin may not ask: ``dns`` not granted, no ``[dns] resolver``, or
    the session's query budget is spent."""

    case = "refused"


class Invalid(DnsError):
    """The name is not a valid domain name (or the address not an IP)."""

    case = "invalid"


_ERRORS = {
    _wit.DnsError_NxDomain: NxDomain,
    _wit.DnsError_NoData: NoData,
    _wit.DnsError_ServerFailure: ServerFailure,
    _wit.DnsError_Timeout: Timeout,
    _wit.DnsError_Refused: Refused,
    _wit.DnsError_Invalid: Invalid,
}


def _error(err: Err) -> DnsError:
    value = err.value
    cls = _ERRORS.get(type(value), ServerFailure)
    return cls(getattr(value, "value", None))


def _record(r: _wit.RecordData) -> Record:
    if isinstance(r, _wit.RecordData_Mx):
        return MxRecord(r.value.preference, r.value.exchange)
    if isinstance(r, _wit.RecordData_Txt):
        return list(r.value)
    return r.value


def _answer(a: _wit.Answer) -> Answer:
    return Answer([_record(r) for r in a.records], a.ttl)


def _rtype(rtype: Union[str, RecordType]) -> RecordType:
    if isinstance(rtype, RecordType):
        return rtype
    try:
        return RecordType[str(rtype).upper()]
    except KeyError:
        raise Invalid(f"unknown record type {rtype!r}") from None


def lookup(name: str, rtype: Union[str, RecordType] = "A") -> Answer:
    """The records of ``rtype`` (``"A"``, ``"txt"``, ``RecordType.MX``...) for
    ``name`` (absolute; a trailing dot is optional). Raises a :class:`DnsError`."""
    kind = _rtype(rtype)
    try:
        return _answer(_wit.lookup(name, kind))
    except Err as e:
        raise _error(e) from None


def reverse(ip: str) -> Answer:
    """The PTR names of an IP address (not forward-confirmed). Raises a :class:`DnsError`."""
    try:
        return _answer(_wit.reverse(ip))
    except Err as e:
        raise _error(e) from None


def addresses(name: str) -> List[str]:
    """The A and AAAA addresses of ``name``; ``[]`` when it has none
    (NXDOMAIN or no data). Other failures raise a :class:`DnsError`."""
    out: List[str] = []
    for kind in (RecordType.A, RecordType.AAAA):
        try:
            out.extend(str(r) for r in lookup(name, kind).records)
        except (NxDomain, NoData):
            pass
    return out


def txt(name: str) -> List[str]:
    """The TXT records of ``name``, each one's character-strings joined
    (RFC 7208 3.3); ``[]`` when there are none (NXDOMAIN or no data). Other
    failures raise a :class:`DnsError`."""
    try:
        return ["".join(r) for r in lookup(name, RecordType.TXT).records if isinstance(r, list)]
    except (NxDomain, NoData):
        return []

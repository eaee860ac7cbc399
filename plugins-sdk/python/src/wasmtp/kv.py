"""State that outlives a connection (WIT interface ``kv``).

Keys live in buckets; a plugin may use the buckets of its grant
(``kv = ["greylist"]`` in its ``[[plugins]]`` entry). Values are ``bytes``
(a ``str`` is stored as UTF-8); times are milliseconds. A failed call
raises a subclass of :class:`KvError` naming the WIT case and changes
nothing::

    from wasmtp import kv

    seen = kv.Bucket("greylist")
    try:
        n = seen.increment("client:192.0.2", 1, ttl_ms=3_600_000)
    except kv.KvError as e:                 # not granted, quota, backend down
        wasmtp.log.warn("kv failed", case=e.case, detail=e.detail)
        return wasmtp.DECLINED

Every function takes the bucket first; :class:`Bucket` binds it once.
"""

from typing import Optional, Union

from componentize_py_types import Err
from wit_world.imports import kv as _wit

__all__ = [
    "KvError",
    "NotGranted",
    "Quota",
    "Unavailable",
    "Invalid",
    "get",
    "get_text",
    "set",
    "delete",
    "increment",
    "compare_and_set",
    "Bucket",
]

Value = Union[bytes, bytearray, str]


class KvError(Exception):
    """A key-value call failed and changed nothing. ``case`` is the WIT
    case name (``"not-granted"``, ``"quota"``, ``"unavailable"``,
    ``"invalid"``); ``detail`` the host's text."""

    case = "kv-error"

    def __init__(self, detail: Optional[str] = None) -> None:
        super().__init__(f"{self.case}: {detail}" if detail else self.case)
        self.detail = detail


class NotGranted(KvError):
    """The bucket is not granted to this plugin."""

    case = "not-granted"


class Quota(KvError):
    """The call would exceed the bucket's quota (value size, key count)."""

    case = "quota"


class Unavailable(KvError):
    """The backend cannot be reached or failed (Redis down, disk error)."""

    case = "unavailable"


class Invalid(KvError):
    """A bad argument (empty or overlong key, zero TTL, not an integer)."""

    case = "invalid"


_ERRORS = {
    _wit.KvError_NotGranted: NotGranted,
    _wit.KvError_Quota: Quota,
    _wit.KvError_Unavailable: Unavailable,
    _wit.KvError_Invalid: Invalid,
}


def _error(err: Err) -> KvError:
    value = err.value
    cls = _ERRORS.get(type(value), Unavailable)
    return cls(getattr(value, "value", None))


def _bytes(value: Value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"kv values are bytes or str, not {type(value).__name__}")


def get(bucket: str, key: str) -> Optional[bytes]:
    """The value of ``key``, or ``None`` if absent or expired."""
    try:
        return _wit.get(bucket, key)
    except Err as e:
        raise _error(e) from None


def get_text(bucket: str, key: str) -> Optional[str]:
    """The value of ``key`` decoded as UTF-8 (invalid bytes replaced), or ``None``."""
    value = get(bucket, key)
    return None if value is None else bytes(value).decode("utf-8", errors="replace")


def set(bucket: str, key: str, value: Value, ttl_ms: Optional[int] = None) -> None:
    """Sets ``key``; with ``ttl_ms`` it expires that long from now, without it
    never (a previous TTL is removed)."""
    try:
        _wit.set(bucket, key, _bytes(value), ttl_ms)
    except Err as e:
        raise _error(e) from None


def delete(bucket: str, key: str) -> bool:
    """Removes ``key``; ``True`` if it was present."""
    try:
        return _wit.delete(bucket, key)
    except Err as e:
        raise _error(e) from None


def increment(bucket: str, key: str, delta: int = 1, ttl_ms: Optional[int] = None) -> int:
    """Adds ``delta`` to the integer at ``key`` (absent counts as 0) and
    returns the new value, atomically. ``ttl_ms`` applies only when this
    call creates the key (a fixed window)."""
    try:
        return _wit.increment(bucket, key, delta, ttl_ms)
    except Err as e:
        raise _error(e) from None


def compare_and_set(
    bucket: str,
    key: str,
    expected: Optional[Value],
    value: Value,
    ttl_ms: Optional[int] = None,
) -> bool:
    """Sets ``key`` to ``value`` only if its value is ``expected`` (``None``:
    only if absent); ``True`` if it was set. Atomic."""
    want = None if expected is None else _bytes(expected)
    try:
        return _wit.compare_and_set(bucket, key, want, _bytes(value), ttl_ms)
    except Err as e:
        raise _error(e) from None


class Bucket:
    """The functions of this module bound to one bucket."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self, key: str) -> Optional[bytes]:
        """See :func:`get`."""
        return get(self.name, key)

    def get_text(self, key: str) -> Optional[str]:
        """See :func:`get_text`."""
        return get_text(self.name, key)

    def set(self, key: str, value: Value, ttl_ms: Optional[int] = None) -> None:
        """See :func:`set`."""
        set(self.name, key, value, ttl_ms)

    def delete(self, key: str) -> bool:
        """See :func:`delete`."""
        return delete(self.name, key)

    def increment(self, key: str, delta: int = 1, ttl_ms: Optional[int] = None) -> int:
        """See :func:`increment`."""
        return increment(self.name, key, delta, ttl_ms)

    def compare_and_set(
        self, key: str, expected: Optional[Value], value: Value, ttl_ms: Optional[int] = None
    ) -> bool:
        """See :func:`compare_and_set`."""
        return compare_and_set(self.name, key, expected, value, ttl_ms)

    def __repr__(self) -> str:
        return f"kv.Bucket({self.name!r})"

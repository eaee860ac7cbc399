"""The message's MIME structure, parsed once per message by the gateway
(WIT interface ``mime``): no MIME parser in the plugin, one parse shared by
every plugin of the chain, re-parsed after a plugin replaces the body.

Each part is the WIT record (``wit_world.imports.mime.Part``): ``index``,
``parent`` (``None`` for the message itself), ``depth``, ``kind`` (a
:class:`PartKind`), ``content_type`` (``"text/plain"``, lower-cased),
``charset``, ``disposition``, ``filename`` (RFC 2231 / 2047 decoded),
``content_id``, ``transfer_encoding``, ``encoded_size``, ``decoded_size``,
``body_range`` (``(start, end)`` in the body, or ``None``) and
``encoding_problem``::

    from wasmtp import mime

    def data_post(self, conn, txn):
        try:
            for part in mime.attachments(txn):
                if (part.filename or "").lower().endswith(".exe"):
                    return wasmtp.deny(554, "5.7.1", "no executables")
            text = " ".join(mime.text(txn, p) for p in mime.body_texts(txn))
        except mime.MimeError as e:   # e.case == "too-complex": hostile MIME
            return wasmtp.deny(554, "5.7.1", e.detail or e.case)
        return wasmtp.DECLINED

A failed call raises :class:`MimeError`; functions taking a part accept the
part or its index.
"""

from typing import List, Optional, Union

from componentize_py_types import Err
from wit_world.imports import mime as _wit
from wit_world.imports.mime import Part, PartKind
from wit_world.imports.types import Header

__all__ = [
    "MimeError",
    "Part",
    "PartKind",
    "parts",
    "attachments",
    "body_texts",
    "text",
    "content",
    "headers",
]

_CHUNK = 1 << 20

_CASES = {
    "MimeError_Unavailable": "unavailable",
    "MimeError_TooComplex": "too-complex",
    "MimeError_Unparsable": "unparsable",
    "MimeError_NoSuchPart": "no-such-part",
    "MimeError_NotText": "not-text",
}


class MimeError(Exception):
    """The MIME view failed. ``case`` is the WIT case (``"unavailable"``,
    ``"too-complex"``, ``"unparsable"``, ``"no-such-part"``, ``"not-text"``);
    ``detail`` the host's text or the part index."""

    def __init__(self, case: str, detail: Optional[str] = None) -> None:
        super().__init__(f"{case}: {detail}" if detail else case)
        self.case = case
        self.detail = detail


def _error(err: Err) -> MimeError:
    value = err.value
    detail = getattr(value, "value", None)
    return MimeError(_CASES.get(type(value).__name__, "unavailable"), None if detail is None else str(detail))


def _index(part: Union[Part, int]) -> int:
    return part if isinstance(part, int) else part.index


def parts(txn) -> List[Part]:
    """Every part, depth-first; index 0 is the message itself."""
    try:
        return _wit.parts(txn)
    except Err as e:
        raise _error(e) from None


def attachments(txn) -> List[Part]:
    """Parts that are attachments: a disposition ``attachment`` or a file name."""
    return [
        p
        for p in parts(txn)
        if p.kind != PartKind.MULTIPART and (p.disposition == "attachment" or p.filename is not None)
    ]


def body_texts(txn) -> List[Part]:
    """``text/plain`` and ``text/html`` parts that are not attachments."""
    return [
        p
        for p in parts(txn)
        if p.kind == PartKind.TEXT
        and p.content_type in ("text/plain", "text/html")
        and p.disposition != "attachment"
    ]


def text(txn, part: Union[Part, int], max_len: int = 1 << 24) -> str:
    """A text part's content as ``str`` (converted from its charset), at most
    ``max_len`` UTF-8 octets."""
    try:
        return _wit.text(txn, _index(part), max_len)
    except Err as e:
        raise _error(e) from None


def content(txn, part: Union[Part, int], limit: int = 1 << 24) -> bytes:
    """A part's transfer-decoded octets (at most ``limit``)."""
    index = _index(part)
    out = bytearray()
    while len(out) < limit:
        try:
            piece = _wit.content(txn, index, len(out), min(_CHUNK, limit - len(out)))
        except Err as e:
            raise _error(e) from None
        if not piece:
            break
        out += piece
    return bytes(out)


def headers(txn, part: Union[Part, int]) -> List[Header]:
    """A part's own header fields (index 0: the message's)."""
    try:
        return _wit.part_headers(txn, _index(part))
    except Err as e:
        raise _error(e) from None

"""Page tokens and page sizes for every list rpc.

A page token is opaque to clients: url-safe base64 of a version byte, the offset
of the next item, a digest of the filter that produced it and a checksum. A token
is only good for the same filter, so a client cannot page one listing with a token
from another and silently skip or repeat items. Tokens are not a security boundary
(an edited offset only selects another page of what the caller may list anyway);
the checksum catches corruption and truncation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from esper.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_TOKEN_VERSION = 1
# version, offset, filter digest (8 bytes)
_BODY = struct.Struct(">BQ8s")
_CHECKSUM_BYTES = 4
_INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"


def _filter_digest(fingerprint: str) -> bytes:
    return hashlib.sha256(fingerprint.encode("utf-8")).digest()[:8]


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()[:_CHECKSUM_BYTES]


def encode_page_token(offset: int, fingerprint: str) -> str:
    """Token for the page starting at `offset` of the listing described by `fingerprint`."""
    if offset < 0:
        raise ValueError(f"page offset must be >= 0, got {offset}")
    body = _BODY.pack(_TOKEN_VERSION, offset, _filter_digest(fingerprint))
    return base64.urlsafe_b64encode(body + _checksum(body)).rstrip(b"=").decode("ascii")


def decode_page_token(token: str, fingerprint: str, *, field: str = "page_token") -> int:
    """Offset carried by `token`; InvalidArgument (INVALID_PAGE_TOKEN) naming `field` if it is
    malformed or was issued for another filter. An empty token means the first page."""
    if not token:
        return 0
    raw = _decode_base64(token, field)
    if len(raw) != _BODY.size + _CHECKSUM_BYTES:
        raise _invalid(field, "is malformed")
    body, checksum = raw[: _BODY.size], raw[_BODY.size :]
    if _checksum(body) != checksum:
        raise _invalid(field, "is corrupted")
    version, offset, digest = _BODY.unpack(body)
    if version != _TOKEN_VERSION:
        raise _invalid(field, f"has unsupported version {version}")
    if digest != _filter_digest(fingerprint):
        raise _invalid(field, "was issued for a different request filter")
    return int(offset)


def validate_page_size(
    page_size: int,
    *,
    field: str = "page_size",
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
) -> int:
    """Effective page size: 0 (unset) means `default`; negative or above `maximum` is refused."""
    if page_size == 0:
        return default
    if page_size < 0 or page_size > maximum:
        raise InvalidArgument.for_field(field, f"must be in [1, {maximum}] (0 means {default}), got {page_size}")
    return page_size


def _decode_base64(token: str, field: str) -> bytes:
    padded = token + "=" * (-len(token) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise _invalid(field, "is not a token issued by this server") from exc


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument.for_field(field, description, reason=_INVALID_PAGE_TOKEN)

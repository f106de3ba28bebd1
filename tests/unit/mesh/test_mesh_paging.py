"""Page tokens and page sizes (esper.paging)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper.errors import FieldViolation, InvalidArgument
from esper.paging import decode_page_token, encode_page_token, validate_page_size


@given(offset=st.integers(min_value=0, max_value=2**63), fingerprint=st.text(max_size=200))
def test_token_round_trips(offset: int, fingerprint: str) -> None:
    assert decode_page_token(encode_page_token(offset, fingerprint), fingerprint) == offset


def test_token_is_url_safe_and_opaque() -> None:
    token = encode_page_token(12345, "tier=1")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "12345" not in token and "tier" not in token


def test_empty_token_is_the_first_page() -> None:
    assert decode_page_token("", "anything") == 0


def _refusal(token: str, fingerprint: str = "f", field: str = "page_token") -> InvalidArgument:
    with pytest.raises(InvalidArgument) as raised:
        decode_page_token(token, fingerprint, field=field)
    return raised.value


@pytest.mark.parametrize(
    "token",
    [
        "not a token!",
        "AAAA",
        encode_page_token(5, "f")[:-3],
        encode_page_token(5, "f") + "AAAA",
        "€uro",
        base64.urlsafe_b64encode(b"\x01" * 21).decode(),
    ],
)
def test_malformed_tokens_are_refused_naming_the_field(token: str) -> None:
    error = _refusal(token, field="request.page_token")
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert [v.field for v in error.violations] == ["request.page_token"]


def test_a_flipped_byte_is_caught_by_the_checksum() -> None:
    raw = bytearray(base64.urlsafe_b64decode(encode_page_token(7, "f") + "=="))
    raw[3] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert _refusal(tampered).reason == "INVALID_PAGE_TOKEN"


def test_a_token_from_another_filter_is_refused() -> None:
    token = encode_page_token(100, "tier=1")
    error = _refusal(token, fingerprint="tier=2")
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert "different request filter" in error.violations[0].description


def test_negative_offsets_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        encode_page_token(-1, "f")


@pytest.mark.parametrize(("given_size", "effective"), [(0, 100), (1, 1), (57, 57), (1000, 1000)])
def test_page_size_zero_means_default_and_valid_sizes_pass(given_size: int, effective: int) -> None:
    assert validate_page_size(given_size) == effective


@pytest.mark.parametrize("bad_size", [-1, -1000, 1001, 2**31 - 1])
def test_page_size_out_of_range_names_the_field(bad_size: int) -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate_page_size(bad_size, field="page_size")
    assert raised.value.reason == "INVALID_FIELD"
    assert raised.value.violations[0].field == "page_size"


def test_page_size_honours_custom_default_and_maximum() -> None:
    assert validate_page_size(0, default=20, maximum=50) == 20
    with pytest.raises(InvalidArgument) as raised:
        validate_page_size(51, field="limit", default=20, maximum=50)
    assert raised.value.violations == [FieldViolation("limit", "must be in [1, 50] (0 means 20), got 51")]

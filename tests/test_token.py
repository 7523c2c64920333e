"""Expiry parsing and the refresh-window rules (pure: no clock, no I/O)."""

from __future__ import annotations

import base64
import copy
import json
import pickle
import weakref

import pytest

from koyeb_auth import Token, TokenState
from koyeb_auth._token import (
    entry_from_token,
    fingerprint,
    jwt_expiry,
    parse_timestamp,
    token_from_entry,
    token_from_reply,
)

EPOCH_2022_09_08_14H = 1662645600.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-09-08T14:00:00Z", EPOCH_2022_09_08_14H),
        ("2022-09-08T14:00:00+00:00", EPOCH_2022_09_08_14H),
        ("2022-09-08T16:00:00+02:00", EPOCH_2022_09_08_14H),
        ("2022-09-08T09:30:00-0430", EPOCH_2022_09_08_14H),
        ("2022-09-08T14:00:00.5Z", EPOCH_2022_09_08_14H + 0.5),
        ("2022-09-08T14:00:00.221274Z", EPOCH_2022_09_08_14H + 0.221274),
        ("2022-09-08T14:00:00.123456789Z", EPOCH_2022_09_08_14H + 0.123456789),
        ("2022-09-08t14:00:00z", EPOCH_2022_09_08_14H),
    ],
)
def test_rfc3339_timestamps_parse_to_the_same_instant(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "2022-09-08", "2022-09-08T14:00:00", "yesterday", "2022-09-08T14:00:00.Z",
                                  "2022-09-08T14:00:00.1234567890Z"])
def test_malformed_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def _jwt(claims: dict[str, object]) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{part(b'{}')}.{part(json.dumps(claims).encode())}.{part(b'sig')}"


def test_expiry_comes_from_expires_at_then_expires_then_jwt_exp() -> None:
    value = _jwt({"exp": 2000})
    from_field = token_from_reply({"token": {"id": value, "expires_at": "1970-01-01T00:16:40Z"}}, now=0)
    from_example_key = token_from_reply({"token": {"id": value, "expires": "1970-01-01T00:25:00Z"}}, now=0)
    from_jwt = token_from_reply({"token": {"id": value}}, now=0)
    assert (from_field.expires_at, from_example_key.expires_at, from_jwt.expires_at) == (1000, 1500, 2000)


def test_a_token_without_any_expiry_never_falls_due() -> None:
    token = token_from_reply({"token": {"id": "opaque"}}, now=0)
    assert token.expires_at is None
    assert token.state(now=10**12, margin=300) is TokenState.FRESH


@pytest.mark.parametrize("claims_segment", ["not-base64!", base64.urlsafe_b64encode(b"[1]").decode(), "e30"])
def test_jwt_without_a_readable_exp_gives_none(claims_segment: str) -> None:
    assert jwt_expiry(f"a.{claims_segment}.c") is None
    assert jwt_expiry("not-a-jwt") is None


@pytest.mark.parametrize(
    "body",
    [None, [], {}, {"token": None}, {"token": {}}, {"token": {"id": ""}}, {"token": {"id": 5}},
     {"token": {"id": "a b"}}, {"token": {"id": "x", "expires_at": 12}}, {"token": {"id": "x", "expires_at": "soon"}}],
)
def test_unusable_replies_are_refused(body: object) -> None:
    with pytest.raises(ValueError):
        token_from_reply(body, now=0)


def test_refresh_window_is_the_margin_capped_at_half_the_lifetime() -> None:
    long_lived = Token("t", obtained_at=0, expires_at=3600)
    assert long_lived.state(now=3299, margin=300) is TokenState.FRESH
    assert long_lived.state(now=3301, margin=300) is TokenState.DUE
    short_lived = Token("t", obtained_at=0, expires_at=60)  # margin 300 > lifetime: window is 30 s
    assert short_lived.state(now=29, margin=300) is TokenState.FRESH
    assert short_lived.state(now=31, margin=300) is TokenState.DUE


def test_expired_one_second_early_so_it_cannot_expire_in_flight() -> None:
    token = Token("t", obtained_at=0, expires_at=100)
    assert token.state(98.999, margin=0) is TokenState.FRESH
    assert token.state(99, margin=0) is TokenState.EXPIRED
    short = Token("t", obtained_at=0, expires_at=2)  # a tenth of the lifetime for short tokens
    assert short.state(1.79, margin=0) is not TokenState.EXPIRED
    assert short.state(1.8, margin=0) is TokenState.EXPIRED


def test_repr_hides_the_value_and_fingerprint_is_stable() -> None:
    token = Token("super-secret-value", obtained_at=1, expires_at=2)
    assert "super-secret-value" not in repr(token)
    assert token.fingerprint == fingerprint("super-secret-value") != fingerprint("other")
    assert len(token.fingerprint) == 8


def test_a_token_is_an_immutable_value_that_copies_and_pickles_whole() -> None:
    token = Token("secret", obtained_at=1.0, expires_at=2.0, user_id="u", organization_id="o",
                  withdrawn=frozenset({"switch"}), password_hash="ab12")
    with pytest.raises(AttributeError, match="immutable"):
        token.value = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del token.expires_at  # type: ignore[misc]
    for twin in (pickle.loads(pickle.dumps(token)), copy.copy(token), copy.deepcopy(token)):
        assert twin == token
        assert hash(twin) == hash(token)
        assert (twin.value, twin.withdrawn, twin.header, twin.password_hash) == (
            "secret", frozenset({"switch"}), "Bearer secret", "ab12")
    assert token != Token("secret", obtained_at=1.0, expires_at=2.0)  # every field counts
    assert token.replace(withdrawn=frozenset()) == Token("secret", 1.0, 2.0, user_id="u", organization_id="o",
                                                         password_hash="ab12")
    assert token.replace(password_hash="cd34").password_hash == "cd34"
    assert token != token.replace(password_hash="cd34")
    assert {token, copy.copy(token)} == {token}
    assert "secret" not in repr(token)
    assert repr(token.header) == "'<redacted>'"


class Kept(Token):
    __slots__ = ()


def test_a_token_keeps_the_dataclass_s_signature_and_identity() -> None:
    token = Token("v", 1.0, 2.0, "u", "o", frozenset({"switch"}))  # every field by position, as before
    assert (token.user_id, token.organization_id, token.withdrawn) == ("u", "o", frozenset({"switch"}))
    assert weakref.ref(token)() is token
    kept = Kept("v", 1.0, 2.0, "u", "o", frozenset({"switch"}))
    assert kept != token  # another class, as with a dataclass
    assert type(pickle.loads(pickle.dumps(kept))) is Kept
    assert type(kept.replace(withdrawn=frozenset())) is Kept


def test_a_sessions_password_hash_travels_in_its_cache_entry_and_never_in_its_repr() -> None:
    opened = Token("tok", obtained_at=1.0, expires_at=2.0, password_hash="ab" * 32)
    entry = entry_from_token(opened)
    assert entry["password_hash"] == "ab" * 32
    assert token_from_entry(json.loads(json.dumps(entry))) == opened
    assert "password_hash" not in entry_from_token(Token("tok", 1.0))  # what earlier versions wrote
    malformed = token_from_entry({**entry, "password_hash": 12})
    assert malformed is not None and malformed.password_hash is None
    assert "ab" * 32 not in repr(opened)

"""Hostile input: fuzzed cache files and fuzzed API replies give a miss or a clear error, never a crash."""

from __future__ import annotations

import base64
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from koyeb_auth import APIError, FileTokenStore, KoyebAuth, KoyebAuthError, Token
from koyeb_auth import _session_api as api
from koyeb_auth.cli import _state as state
from koyeb_auth.testing import FakeKoyebAPI, Fault

GOOD = Token("good", obtained_at=time.time(), expires_at=time.time() + 365 * 86400)  # ten years at most
LOGIN = api.login("https://app.koyeb.com", "a@b.c", "pw", None, None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
cache_like = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 2, "1", None]),
     "tokens": st.dictionaries(st.sampled_from(["k", "other"]), json_values | st.fixed_dictionaries(
         {"token": json_values, "obtained_at": json_values, "expires_at": json_values}), max_size=3)}
)


def _roundtrip(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = FileTokenStore(Path(tmp) / "tokens.json")
        store.path.write_bytes(content)
        store.path.chmod(0o600)
        found = store.load("k")
        assert found is None or isinstance(found, Token)
        store.save("k", GOOD)
        assert store.load("k") == GOOD
        assert json.loads(store.path.read_bytes())["version"] == 1


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_in_the_cache_file_are_a_miss(content: bytes) -> None:
    _roundtrip(content)


def test_a_cache_or_login_file_nested_too_deeply_is_a_miss(tmp_path: Path) -> None:
    _roundtrip(b"[" * 100_000)  # json raises RecursionError, not the ValueError of other bad JSON
    login = tmp_path / "tokens.json.login"
    login.write_bytes(b"[" * 100_000)
    login.chmod(0o600)
    assert state.load(login) is None


@settings(max_examples=150, deadline=None)
@given(cache_like)
def test_cache_shaped_json_with_wrong_types_is_a_miss_or_a_valid_token(document: dict[str, object]) -> None:
    _roundtrip(json.dumps(document).encode())


@settings(max_examples=100, deadline=None)
@given(cache_like.map(lambda d: json.dumps(d).encode()), st.integers(min_value=0, max_value=200))
def test_truncated_cache_files_are_a_miss(content: bytes, cut: int) -> None:
    _roundtrip(content[: max(len(content) - cut, 0)])


reply_bodies = st.one_of(
    st.binary(max_size=500),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"token": st.fixed_dictionaries(
        {"id": json_values, "expires_at": json_values | st.text(max_size=40)})}).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=300, deadline=None)
@given(reply_bodies)
def test_fuzzed_login_replies_give_a_token_or_an_api_error(body: bytes) -> None:
    try:
        token = api.token_from(LOGIN, api.Reply(200, {}, body), sent=0.0, now=0.0)
    except APIError as exc:
        assert len(str(exc)) < 1000  # noqa: PT017 - a token and an error are both right answers
    else:
        assert token.value and isinstance(token.value, str)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=100, max_value=599).filter(lambda s: s != 200), reply_bodies,
       st.dictionaries(st.sampled_from(["x-ratelimit-reset", "retry-after"]), st.text(max_size=10)))
def test_fuzzed_error_replies_map_to_a_koyeb_auth_error(status: int, body: bytes, headers: dict[str, str]) -> None:
    error = api.error_for(LOGIN, api.Reply(status, headers, body))
    assert isinstance(error, KoyebAuthError)
    assert str(status) in str(error)
    assert len(str(error)) < 1000


def test_unusable_replies_from_the_api_raise_clearly_and_cache_nothing(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path
) -> None:
    for reply in (b"<html><body>Sign in to the proxy</body></html>", b"{" * 10, b"x" * (3 << 20),
                  json.dumps({"token": {"id": "t", "expires_at": "not a time"}}).encode(),
                  json.dumps({"token": {"expires_at": "2099-01-01T00:00:00Z"}}).encode()):
        fake.fail("login", Fault(200, reply))
        with pytest.raises(APIError, match="unusable reply"):
            make_auth().get_token()
        assert not cache_path.exists() or "\"t\"" not in cache_path.read_text()
    assert make_auth().get_token()  # and the next good reply is used


DEEP = b"[" * 100_000  # deeper than any JSON parser's recursion goes


@pytest.mark.parametrize(("action", "status"), [("login", 200), ("login", 503), ("access_token", 200)])
def test_a_reply_nested_too_deeply_is_an_api_error_inside_the_backoff(
    action: Literal["login", "access_token"], status: int, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.fail(action, Fault(status, DEEP), times=10)
    auth = make_auth() if action == "login" else make_auth(email=None, password=None, token=fake.PERSONAL_TOKEN,
                                                            organization_id="org-1", organization_token="access_token")
    with freeze_time("2026-01-01"):  # frozen: the five calls fall within the first backoff
        for _ in range(5):
            with pytest.raises(APIError) as caught:
                auth.get_token()
            assert caught.value.status == status and caught.value.__context__ is None
    assert fake.stats == {f"fault_{action}": 1}  # one request: the others met the backoff


def test_a_jwt_nested_too_deeply_is_a_token_without_an_expiry_hint() -> None:
    payload = base64.urlsafe_b64encode(b"[" * 6000).rstrip(b"=").decode()  # as deep as MAX_TOKEN_CHARS allows
    body = json.dumps({"token": {"id": f"e30.{payload}.c2ln"}}).encode()
    assert api.token_from(LOGIN, api.Reply(200, {}, body), sent=0.0, now=0.0).expires_at is None

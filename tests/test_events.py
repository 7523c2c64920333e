"""Token events (`KoyebAuth(on_event=...)`): what happened to the token, for metrics and alerts."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from freezegun import freeze_time

from koyeb_auth import APIError, KoyebAuth, TokenEvent
from koyeb_auth._token import fingerprint
from koyeb_auth.testing import FakeKoyebAPI, Fault


class Recorder(list[TokenEvent]):
    """An on_event hook that keeps the events."""

    def __call__(self, event: TokenEvent) -> None:
        self.append(event)

    @property
    def kinds(self) -> list[str]:
        return [event.kind for event in self]


def no_token_in(events: list[TokenEvent], fake: FakeKoyebAPI) -> bool:
    text = repr(events) + "".join(str(event.error) for event in events)
    return not any(token in text for token in fake.issued)


def get(auth: KoyebAuth, fake: FakeKoyebAPI) -> int:
    with httpx.Client(base_url=fake.url, auth=auth) as client:
        return client.get("/v1/apps").status_code


def test_a_login_a_refresh_and_a_rejection_are_reported_by_fingerprint(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    events = Recorder()
    fake.ttl = 600
    auth = make_auth(refresh_margin=300, on_event=events)
    with freeze_time(tick=True) as clock:
        assert get(auth, fake) == 200
        first = auth.get_token()
        assert events.kinds == ["obtained"]
        login = events[0]
        assert (login.action, login.fingerprint, login.error, login.kept) == ("login", fingerprint(first), None, False)
        assert login.expires_at is not None and abs(login.expires_at - (clock().timestamp() + 600)) < 5

        clock.tick(400)  # in the refresh window
        assert get(auth, fake) == 200
        second = auth.get_token()
        assert events.kinds == ["obtained", "refreshed"]
        assert (events[1].action, events[1].fingerprint) == ("refresh", fingerprint(second))

        fake.revoke()  # the next request gets a 401: the token is reported rejected, then renewed
        assert get(auth, fake) == 200
        assert events.kinds == ["obtained", "refreshed", "rejected", "obtained"]
        assert (events[2].fingerprint, events[2].action) == (fingerprint(second), None)
        assert (events[3].action, events[3].fingerprint) == ("login", fingerprint(auth.get_token()))
    assert fake.stats == {"login": 2, "refresh": 1, "api": 3, "unauthorized": 1, "refresh_refused": 1}
    clean = no_token_in(events, fake)  # a bool: a failure must not print what leaked
    assert clean


def test_a_failed_refresh_keeps_the_token_and_a_failed_login_is_raised(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    events = Recorder()
    fake.ttl = 600
    auth = make_auth(refresh_margin=300, on_event=events)
    with freeze_time(tick=True) as clock:
        assert get(auth, fake) == 200
        held = auth.get_token()
        clock.tick(400)
        fake.fail("refresh", Fault(503))
        assert get(auth, fake) == 200  # the still-valid token is kept
        assert events.kinds == ["obtained", "failed"]
        kept = events[1]
        assert kept.kept and kept.fingerprint == fingerprint(held) and isinstance(kept.error, APIError)

        clock.tick(300)  # expired; the login fails too
        fake.fail("login", Fault(503))
        with pytest.raises(APIError):
            get(auth, fake)
        raised = events[-1]
        assert (raised.kind, raised.kept, raised.fingerprint) == ("failed", False, None)
        assert isinstance(raised.error, APIError) and raised.error.status == 503
    clean = no_token_in(events, fake)  # a bool: a failure must not print what leaked
    assert clean


def test_a_failed_renewal_after_a_401_is_reported_and_raised(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    events = Recorder()
    auth = make_auth(on_event=events)
    assert get(auth, fake) == 200
    rejected = fingerprint(auth.get_token())
    fake.revoke()
    fake.fail("refresh", Fault(503))
    with pytest.raises(APIError):
        get(auth, fake)
    assert events.kinds == ["obtained", "rejected", "failed"]
    assert events[1].fingerprint == events[2].fingerprint == rejected
    assert events[2].kept is False and isinstance(events[2].error, APIError)


def test_an_organization_switch_is_obtained_with_its_action(fake: FakeKoyebAPI, cache_path: Path) -> None:
    events = Recorder()
    auth = KoyebAuth(token=fake.PERSONAL_TOKEN, organization_id=fake.ORGANIZATION_ID, api_url=fake.url,
                     cache_path=cache_path, on_event=events)
    assert get(auth, fake) == 200
    assert [(e.kind, e.action) for e in events] == [("obtained", "switch")]
    # A personal access token used as is is never obtained or renewed: no event.
    alone = Recorder()
    personal = KoyebAuth(token=fake.PERSONAL_TOKEN, api_url=fake.url, on_event=alone)
    assert fingerprint(personal.get_token()) == fingerprint(fake.PERSONAL_TOKEN)
    assert alone == []


def test_events_from_async_callers(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    events = Recorder()
    auth = make_auth(on_event=events)

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=fake.url, auth=auth) as client:
            replies = await asyncio.gather(*(client.get("/v1/apps") for _ in range(20)))
        return [reply.status_code for reply in replies]

    assert asyncio.run(main()) == [200] * 20
    assert events.kinds == ["obtained"] and fake.stats["login"] == 1


def test_a_hook_that_raises_is_logged_and_the_request_goes_on(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: TokenEvent) -> None:
        raise RuntimeError("metrics backend down")

    with caplog.at_level(logging.ERROR, logger="koyeb_auth"):
        assert get(make_auth(on_event=broken), fake) == 200
    (record,) = [r for r in caplog.records if "on_event hook raised" in r.getMessage()]
    assert record.exc_info is not None and "metrics backend down" in str(record.exc_info[1])
    assert fake.stats["login"] == 1


def test_an_event_is_frozen_and_a_module_level_hook_pickles(make_auth: Callable[..., KoyebAuth]) -> None:
    event = TokenEvent("obtained", "abcd1234", 1.0, "login")
    with pytest.raises(AttributeError):
        event.kind = "failed"  # type: ignore[misc]
    restored = pickle.loads(pickle.dumps(make_auth(on_event=module_level_hook)))
    assert restored._on_event is module_level_hook


def module_level_hook(event: TokenEvent) -> None:
    pass

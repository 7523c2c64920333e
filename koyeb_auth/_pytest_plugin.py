"""The pytest plugin of koyeb-auth (entry point `pytest11`, name `koyeb_auth`): fixtures that start
the bundled fake Koyeb API for your own tests.

```python
@pytest.mark.koyeb_api(latency=0.2)          # FakeKoyebAPI's options, all optional
def test_my_app_survives_a_revoked_token(koyeb_api):
    ...
    koyeb_api.revoke()                           # every session; revoke(token) for one
    koyeb_api.fail("api", times=2)               # the next 2 API calls answer 503
    koyeb_api.clock_offset = 300                 # the API's clock runs 5 minutes ahead
    koyeb_api.drop("login", status=410)          # Koyeb withdrew the endpoint
    assert koyeb_api.stats["login"] == 1
```

Loading the plugin imports only this module: the fake (its HTTP server) loads when a test asks
for a fixture, so a run that uses none is not slowed down. `pytest -p no:koyeb_auth` disables it.
See docs/testing.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .testing import FakeKoyebAPI

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "koyeb_api(**options): options of the fake Koyeb API the koyeb_api fixture starts "
                   "(FakeKoyebAPI's: ttl, latency, clock_offset, without, expiry_style, ...)")


@pytest.fixture
def koyeb_api(request: pytest.FixtureRequest) -> Iterator[FakeKoyebAPI]:
    """A fake Koyeb API serving on loopback for this test (a `koyeb_auth.testing.FakeKoyebAPI`):
    its `url`, its `PERSONAL_TOKEN` (accepted by every call) and its demo account (`EMAIL`,
    `PASSWORD`); `revoke()`, `fail()`, `latency`, `clock_offset` and `drop()` play faults, `stats`
    counts the calls. `@pytest.mark.koyeb_api(...)` passes options to it."""
    from .testing import FakeKoyebAPI  # noqa: PLC0415 - only for the tests that use the fixture

    marker = request.node.get_closest_marker("koyeb_api")
    with FakeKoyebAPI(**(marker.kwargs if marker else {})) as api:
        yield api


@pytest.fixture
def koyeb_env(koyeb_api: FakeKoyebAPI, monkeypatch: pytest.MonkeyPatch) -> FakeKoyebAPI:
    """The `koyeb_api` fake, with this test's environment pointing at it as a shell would after
    `koyeb-auth fake-api`: `KOYEB_URL` and `KOYEB_TOKEN` set, every other `KOYEB_*` variable unset
    (so `KoyebAuth()`, Koyeb's CLI and SDK use the fake's personal token)."""
    for name in [name for name in os.environ if name.startswith("KOYEB_")]:
        monkeypatch.delenv(name)
    for name, value in koyeb_api.environ.items():
        monkeypatch.setenv(name, value)
    return koyeb_api

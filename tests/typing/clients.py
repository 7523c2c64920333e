"""Type-checked by tests/test_typing.py under `mypy --strict`, as a user's code: never run.

Each line is how the README tells a user to pass KoyebAuth to a client; `assert_type` fails on Any,
so the SDK helpers must return the SDK's own classes.
"""

import koyeb.api
import koyeb.api_async
import niquests
import requests
from typing_extensions import assert_type

from koyeb_auth import KoyebAuth, NiquestsAsyncKoyebAuth
from koyeb_auth.integrations.sdk import async_sdk_client, sdk_client, sdk_configuration

auth = KoyebAuth()

requests.get("https://app.koyeb.com/v1/apps", auth=auth)
session = requests.Session()
session.auth = auth

niquests.get("https://app.koyeb.com/v1/apps", auth=auth)
niquests_session = niquests.Session()
niquests_session.auth = auth
niquests.Session(auth=auth)
niquests.AsyncSession(auth=NiquestsAsyncKoyebAuth(auth))

assert_type(sdk_configuration(auth), koyeb.api.Configuration)
assert_type(sdk_client(auth), koyeb.api.ApiClient)
assert_type(async_sdk_client(auth), koyeb.api_async.ApiClient)

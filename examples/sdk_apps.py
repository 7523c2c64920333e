"""List your Koyeb apps with Koyeb's own SDK (`koyeb-sdk`), its tokens managed by KoyebAuth.

    pip install -e '.[sdk]'    # in a checkout of koyeb-auth: it and koyeb-sdk
    KOYEB_TOKEN=... python sdk_apps.py

Credentials come from the environment (`KOYEB_TOKEN`, a personal access token; or the deprecated
`KOYEB_EMAIL` and `KOYEB_PASSWORD`) or ~/.koyeb.yaml; `KOYEB_URL` points at another API.

koyeb-sdk ships no py.typed marker: for mypy to check the SDK's calls, set `follow_untyped_imports = true`
for the modules `koyeb.*` (mypy 1.14 or later).
"""

import asyncio

import koyeb.api
import koyeb.api_async

from koyeb_auth import KoyebAuth
from koyeb_auth.integrations.sdk import async_sdk_client, sdk_client


def main() -> None:
    auth = KoyebAuth()
    # The sync SDK: the client renews the token before it expires, and once after a 401.
    with sdk_client(auth) as client:
        for app in koyeb.api.AppsApi(client).list_apps().apps or []:
            print("sync", app.name)
    # The async SDK, on the same auth: the token it logged in with is reused, not fetched again.
    asyncio.run(list_apps_async(auth))


async def list_apps_async(auth: KoyebAuth) -> None:
    async with async_sdk_client(auth) as client:
        reply = await koyeb.api_async.AppsApi(client).list_apps()
        for app in reply.apps or []:
            print("async", app.name)


if __name__ == "__main__":
    main()

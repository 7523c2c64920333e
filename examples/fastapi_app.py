"""A FastAPI app that calls the Koyeb API: one KoyebAuth and one httpx.AsyncClient for its lifetime.

    pip install -e '.[examples]'    # in a checkout of koyeb-auth: it, FastAPI and uvicorn
    KOYEB_TOKEN=... uvicorn fastapi_app:app --workers 4

The lifespan opens the client at startup and closes it at shutdown. Construction does no I/O: the
first request logs in. The workers share the token through the cache file, so a fleet of them logs
in once and refreshes once per token lifetime. Async requests never block the event loop, not even
while another process holds the lock to renew.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request

from koyeb_auth import KoyebAuth


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    auth = KoyebAuth()  # credentials from KOYEB_TOKEN (or ~/.koyeb.yaml); KOYEB_URL for another API
    async with httpx.AsyncClient(base_url=auth.settings.api_url, auth=auth, timeout=30) as client:
        app.state.koyeb = client
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/apps")
async def apps(request: Request) -> list[str]:
    koyeb: httpx.AsyncClient = request.app.state.koyeb
    response = await koyeb.get("/v1/apps")
    response.raise_for_status()
    return [app["name"] for app in response.json()["apps"]]

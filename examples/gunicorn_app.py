"""A WSGI app served by gunicorn with `--preload`: KoyebAuth built once, before the fork.

    pip install -e '.[examples]'    # in a checkout of koyeb-auth: it and gunicorn
    KOYEB_TOKEN=... gunicorn --preload --workers 4 gunicorn_app:app

With `--preload` the master imports this module and then forks the workers, so they inherit this
KoyebAuth. Construction does no I/O: the master opens no connection and logs in to nothing. A
forked child gets fresh locks (docs/how-it-works.md), and the workers share the token through
the cache file: the first request logs in, and the other workers adopt its token.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any

import requests

from koyeb_auth import KoyebAuth

AUTH = KoyebAuth()  # credentials from KOYEB_TOKEN (or ~/.koyeb.yaml); KOYEB_URL for another API


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/apps":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    response = requests.get(f"{AUTH.settings.api_url}/v1/apps", auth=AUTH, timeout=30)
    response.raise_for_status()
    body = json.dumps([app["name"] for app in response.json()["apps"]]).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

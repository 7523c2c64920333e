"""A helper process for the refresh storm: requests in a loop through MockTransport until told."""

from __future__ import annotations

import json
import sys
import time

import httpx

from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

from .common import ok_handler


def main() -> None:
    cache, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    auth = KoyebAuth(FakeKoyebAPI.EMAIL, FakeKoyebAPI.PASSWORD, api_url=url, cache_path=cache)
    client = httpx.Client(transport=httpx.MockTransport(ok_handler), auth=auth)
    print("ready", flush=True)
    sys.stdin.readline()
    deadline, count = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        client.get(url + "/v1/apps")
        count += 1
    print(json.dumps({"requests": count}), flush=True)


if __name__ == "__main__":
    main()

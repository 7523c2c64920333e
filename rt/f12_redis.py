"""The same plants in Redis, where every process of a fleet reads the entry: a non-ASCII
password_hash stops the whole fleet with TypeError; a hash copied between keys of one account."""
import json, tempfile, time
from koyeb_auth import KoyebAuth, _sources
from koyeb_auth.stores import RedisTokenStore
from koyeb_auth.testing import FakeKoyebAPI, RedisServer
import redis

with FakeKoyebAPI() as api, RedisServer() as server:
    store = RedisTokenStore(server.url)
    KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, store=store).get_token()
    r = redis.Redis.from_url(server.url)
    keys = [k for k in r.keys("*") if b"lock" not in k]
    print("keys:", keys)
    raw = json.loads(r.get(keys[0])); raw["password_hash"] = "é" * 64
    r.set(keys[0], json.dumps(raw))
    for who, pw in (("right", api.PASSWORD), ("wrong", "guess")):
        try:
            KoyebAuth(api.EMAIL, pw, api_url=api.url, store=RedisTokenStore(server.url)).get_token(); print(who, "token")
        except Exception as exc:
            print(who, type(exc).__name__, exc)

"""A fake Koyeb API on loopback, for your tests, our tests and the demo.

```python
with FakeKoyebAPI() as api:
    auth = KoyebAuth(token=FakeKoyebAPI.PERSONAL_TOKEN, api_url=api.url, cache_path=tmp / "t.json")
    httpx.get(api.url + "/v1/apps", auth=auth)
    assert api.stats["api"] == 1
```

It accepts its personal access token (`PERSONAL_TOKEN`, a public test value) for every API call,
as Koyeb does, and implements login, refresh, logout, the organization switch, the organization
access token and `GET /v1/account/login_method` as the real API documents them, and counts what it
saw. `GET /v1/account/profile` and `GET /v1/apps` answer what Koyeb's OpenAPI document describes
(`UserReply`, `ListAppsReply`), as the Koyeb SDK reads them; every other path is an authenticated
echo of the request (`method`, `path`, `body`: the fake's own, for tests of bodies and retries).
Faults: the next calls of an action fail (`fail`), every answer waits (`latency`), its clock runs
ahead or behind (`clock_offset`), tokens are revoked (`revoke`). For a fake run in another process,
`GET /_fake/stats` returns the counters and `POST /_fake/revoke` revokes sessions. In pytest, the
`koyeb_api` fixture starts one (docs/testing.md).

Koyeb has deprecated login, refresh, logout, the switch and login_method. Rehearse their removal: an
endpoint dropped with `FakeKoyebAPI(without={"switch"})` or `api.drop("login", status=410)` answers
as a gateway answers a route it no longer has.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, get_args

Action = Literal["login", "refresh", "switch", "access_token", "logout", "login_method", "api"]
ExpiryStyle = Literal["expires_at", "expires", "jwt"]
ACTIONS = frozenset(get_args(Action))
SESSION_ENDPOINTS = ACTIONS - {"api"}

_UNAUTHENTICATED = "Request unauthenticated with bearer"
_BAD_CREDENTIALS = "There is no Koyeb account associated with this email address or your password is incorrect"
_ORGANIZATION_PATH = re.compile(r"/v1/organizations/([^/]+)/(switch|access_token)")
_ROUTES: dict[tuple[str, str], Action] = {
    ("POST", "/v1/account/login"): "login",
    ("PUT", "/v1/account/refresh"): "refresh",
    ("DELETE", "/v1/account/logout"): "logout",
    ("GET", "/v1/account/login_method"): "login_method",
}
_MAX_VALIDITY = 24 * 3600.0  # the access token endpoint's limit
_DEFAULT_VALIDITY = 3600.0
# The google.rpc.Status code grpc-gateway's routing error handler sends with each status.
_GATEWAY_CODES = {404: 5, 405: 12, 410: 5}  # NOT_FOUND, UNIMPLEMENTED
# When the fake's demo user and app were made (RFC 3339, as grpc-gateway writes timestamps).
_CREATED = "2024-01-01T00:00:00Z"
_Answer = tuple[int, Any, dict[str, str]]


def _action(method: str, path: str) -> Action:
    if method == "POST" and (match := _ORGANIZATION_PATH.fullmatch(path)):
        return "switch" if match[2] == "switch" else "access_token"
    return _ROUTES.get((method, path), "api")


@dataclass
class Fault:
    """One injected failure: a status and body, a delay first, or a dropped connection."""

    status: int = 503
    body: Any = field(default_factory=lambda: {"status": 503, "code": "api_error", "message": "Service unavailable"})
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class _Session:
    user_id: str
    organization_id: str
    expires_at: float


# A personal access token is a credential, not a session: it does not expire (until revoked).
_PERSONAL = "user-pat"


_POLL = 0.02


class FakeKoyebAPI:
    """A fake Koyeb API served on loopback: its session endpoints and answers as the module describes.

    ```python
    with FakeKoyebAPI(ttl=60) as api:
        auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=tmp / "tokens.json")
    ```

    Thread-safe: tests change its faults and read its counters while it serves.
    """

    EMAIL = "demo@koyeb.com"
    PASSWORD = "demo-password"
    PERSONAL_TOKEN = "k" * 64  # the CLI expects 64 characters
    ORGANIZATION_ID = "org-demo"

    users: dict[str, str]
    """The accounts a password login accepts: email to password (add your own)."""
    personal_tokens: set[str]
    """The personal access tokens it accepts for every call until revoked (add your own)."""

    def __init__(
        self,
        *,
        ttl: float = 3600.0,
        login_delay: float = 0.0,
        refresh_delay: float = 0.0,
        revoke_on_refresh: bool = True,
        expiry_style: ExpiryStyle = "expires_at",
        without: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        clock_offset: float = 0.0,
        latency: float = 0.0,
    ) -> None:
        """A fake not yet serving: `start()` it, or use it as a context manager.

        - `ttl`: seconds each session token it issues lives.
        - `login_delay`, `refresh_delay`: seconds a login (and an organization token) or a refresh
          takes, for tests of callers that wait on one.
        - `revoke_on_refresh`: a refresh revokes the token it renewed (False: it stays valid).
        - `expiry_style`: how replies give the expiry: `expires_at` or `expires` fields, or only the
          token's JWT `exp` claim (`jwt`).
        - `without`: session endpoints dropped from the start (see `drop`).
        - `host`, `port`: where to listen (port 0: a free one; see `url`).
        - `clock_offset`: seconds its clock runs ahead of the machine's (negative: behind).
        - `latency`: seconds every answer waits.
        """
        self.ttl = ttl
        # Seconds every answer waits before it is sent (a slow or distant API).
        self.latency = latency
        # Seconds this API's clock runs ahead of the machine's (negative: behind). The expiries it
        # issues, its expiry checks and its Date header are all in its own clock.
        self.clock_offset = clock_offset
        self.login_delay = login_delay
        self.refresh_delay = refresh_delay
        # The last tokens issued, for leak checks (bounded: a long-running fake stays small).
        self.issued: deque[str] = deque(maxlen=100)
        # (monotonic time, counter name) of every session call (not plain API calls), for timelines
        self.events: list[tuple[float, str]] = []
        self.revoke_on_refresh = revoke_on_refresh
        self.expiry_style = expiry_style
        self.users = {self.EMAIL: self.PASSWORD}
        # Accounts that sign in through WorkOS: login_method says WORKOS, and their password login
        # is refused as a wrong password is (the console never sent them to the password endpoint).
        self.workos_users: set[str] = set()
        # The personal access tokens it accepts for every call until revoked (add your own).
        self.personal_tokens = {self.PERSONAL_TOKEN}
        self.locked_users: set[str] = set()
        self.deactivated_organizations: set[str] = set()
        self._counts: Counter[str] = Counter()
        self._faults: dict[str, deque[Fault]] = {}
        self._dropped: dict[str, int] = {}
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        for endpoint in without:
            self.drop(endpoint)
        self._secret = secrets.token_bytes(16)
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        self._server = server_class((host, port), _Handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.request_queue_size = 1024  # a cold fleet connects at once
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Its base URL, `http://<host>:<port>` (the port is known once bound)."""
        host, port = self._server.server_address[:2]
        return f"http://[{host!s}]:{port}" if ":" in str(host) else f"http://{host!s}:{port}"

    def start(self) -> FakeKoyebAPI:
        """Serve from a background thread."""
        self.bind()
        # A short poll: stop() waits for the serving loop to notice, and tests start and stop many fakes.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(_POLL,), name="fake-koyeb-api",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def bind(self) -> None:
        """Bind the port now, so `url` is known before serving."""
        self._server.server_bind()
        self._server.server_activate()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (bind() first)."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def __enter__(self) -> FakeKoyebAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the tests control and read --------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Calls seen: login, refresh, switch, access_token, logout, api (authorized requests),
        unauthorized (401s on API requests), expired_sent (requests carrying an expired token),
        failed_login, login_method, `<endpoint>_refused` (401s), `dropped_<endpoint>` (calls to a dropped one)."""
        with self._lock:
            return dict(self._counts)

    def reset_stats(self) -> None:
        """Zero the counters of `stats` and clear `events`."""
        with self._lock:
            self._counts.clear()
            self.events.clear()

    def fail(self, action: Action, fault: Fault | None = None, times: int = 1) -> None:
        """Answer the next `times` calls of `action` with `fault` (default: a 503)."""
        with self._lock:
            self._faults.setdefault(action, deque()).extend([fault or Fault()] * times)

    def drop(self, endpoint: str, status: int = 404) -> None:
        """Withdraw a session endpoint, as Koyeb may: from now on it answers `status` (404, 405 or
        410) with the body a gateway sends for a route it does not have."""
        if endpoint not in SESSION_ENDPOINTS or status not in _GATEWAY_CODES:
            raise ValueError(f"drop() takes one of {sorted(SESSION_ENDPOINTS)} and a status among 404, 405, 410")
        with self._lock:
            self._dropped[endpoint] = status

    def restore(self, endpoint: str) -> None:
        """Serve a dropped endpoint again."""
        with self._lock:
            self._dropped.pop(endpoint, None)

    @property
    def dropped(self) -> dict[str, int]:
        """The endpoints dropped, and the status each answers."""
        with self._lock:
            return dict(self._dropped)

    def revoke(self, token: str | None = None) -> None:
        """Revoke one token (a session, an access token or a personal token), or every session and
        access token it issued; a personal token is revoked only when named."""
        with self._lock:
            # A revoked session is forgotten: an unknown token gets the same 401, and a long-running
            # fake keeps only the sessions that can still be used (or be sent after they expired).
            for value in [token] if token is not None else list(self._sessions):
                self._sessions.pop(value, None)
                self.personal_tokens.discard(value)

    @property
    def environ(self) -> dict[str, str]:
        """The variables that point Koyeb's CLI, its SDK's sandbox and koyeb-auth at this fake with
        its personal token (a public test value, not a Koyeb secret)."""
        return {"KOYEB_URL": self.url, "KOYEB_TOKEN": self.PERSONAL_TOKEN}

    def now(self) -> float:
        """The time on this API's clock."""
        return time.time() + self.clock_offset

    def live_tokens(self) -> list[str]:
        """The session tokens it issued that are neither revoked nor expired (in its clock)."""
        now = self.now()
        with self._lock:
            return [v for v, s in self._sessions.items() if s.expires_at > now]

    # --- the endpoints --------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        """Answer a request for `target` (its path and query), after the latency."""
        time.sleep(self.latency)
        path, _, query = target.partition("?")
        if path.startswith("/_fake/"):
            return self._control(method, path, body)
        if _action(method, path) == "login_method":
            # Here rather than in handle(), whose signature (no query) subclasses override.
            return self._injected("login_method") or self._withdrawn("login_method") or self._login_method(query)
        return self.handle(method, path, headers, body)

    def _control(self, method: str, path: str, body: bytes) -> _Answer:
        """The fake's own endpoints, for a fake run in another process: `GET /_fake/stats`, and
        `POST /_fake/revoke` (every session, or the `token` its JSON body names)."""
        if (method, path) == ("GET", "/_fake/stats"):
            return 200, self.stats, {}
        if (method, path) == ("POST", "/_fake/revoke"):
            request: object = {}
            with contextlib.suppress(ValueError):
                request = json.loads(body or b"{}")
            token = request.get("token") if isinstance(request, dict) else None
            self.revoke(token if isinstance(token, str) else None)
            return 200, {}, {}
        return 404, {"code": 5, "message": "Not Found", "details": []}, {}

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        """Answer a request for `path` (without its query)."""
        action = _action(method, path)
        answer = self._injected(action) or self._withdrawn(action)
        if answer is not None:
            return answer
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if action in ("login", "login_method"):  # unauthenticated
            return self._login(body) if action == "login" else self._login_method("")
        if action in ("switch", "access_token"):
            return self._organization_token(action, bearer, path.split("/")[3], body)
        # Refresh and logout end a session: a personal token is none (and logout must not revoke it).
        session, error = self._authenticate(bearer, personal=action == "api")
        if session is None:
            self._count("unauthorized" if action == "api" else f"{action}_refused")
            return 401, {"status": 401, "code": "authentication_error", "message": error}, {}
        if action == "refresh":
            time.sleep(self.refresh_delay)
        self._count(action)
        if action == "api":
            return 200, _resource(method, path, body, session), {}
        # Refresh and logout both end the session they were called with (refresh: unless told not to).
        if action == "logout" or self.revoke_on_refresh:
            self.revoke(bearer)
        return 200, ({} if action == "logout" else self._issue(session.user_id, session.organization_id)), {}

    def _injected(self, action: Action) -> _Answer | None:
        with self._lock:
            queue = self._faults.get(action)
            fault = queue.popleft() if queue else None
        if fault is None:
            return None
        self._count(f"fault_{action}")
        time.sleep(fault.delay)
        if fault.drop:
            raise ConnectionAbortedError
        return fault.status, fault.body, dict(fault.headers)

    def _withdrawn(self, action: Action) -> _Answer | None:
        with self._lock:
            status = self._dropped.get(action)
        if status is None:
            return None
        self._count(f"dropped_{action}")
        # grpc-gateway's answer for a route it does not know: a google.rpc.Status, not Koyeb's Error.
        return status, {"code": _GATEWAY_CODES[status], "message": HTTPStatus(status).phrase, "details": []}, {}

    def _login(self, body: bytes) -> _Answer:
        time.sleep(self.login_delay)
        try:
            request = json.loads(body)
            email, password = request["email"], request["password"]
        except (ValueError, KeyError, TypeError):
            self._count("failed_login")
            return 400, {"status": 400, "code": "invalid_argument", "message": "Invalid argument"}, {}
        if email in self.locked_users:
            self._count("failed_login")
            return 403, {"status": 403, "code": "authorization_error", "message": "Account is locked"}, {}
        if self.users.get(email) != password or email in self.workos_users:
            self._count("failed_login")
            return 401, {"status": 401, "code": "authentication_error", "message": _BAD_CREDENTIALS}, {}
        self._count("login")
        return 200, self._issue(f"user-{email}", request.get("organization_id") or self.ORGANIZATION_ID), {}

    def _login_method(self, query: str) -> _Answer:
        """`LoginMethodReply`: WORKOS for the accounts in `workos_users`, else KOYEB (the enum's default).
        Unauthenticated: the console asked it before any login."""
        self._count("login_method")
        email = urllib.parse.parse_qs(query).get("email", [""])[0]
        return 200, {"method": "WORKOS" if email in self.workos_users else "KOYEB"}, {}

    def _organization_token(self, action: Action, bearer: str, organization_id: str, body: bytes) -> _Answer:
        """The switch (a session in the organization) or an access token scoped to it (`validity`)."""
        time.sleep(self.login_delay)
        session, _ = self._authenticate(bearer)
        if session is None:
            self._count(f"{action}_refused")
            return 401, {"status": 401, "code": "authentication_error", "message": _UNAUTHENTICATED}, {}
        user_id = session.user_id
        if action == "switch":
            self._count("switch")
            return 200, self._issue(user_id, organization_id), {}
        validity = _validity(body)
        if validity is None:
            self._count("failed_access_token")
            field_error = {"field": "validity", "description": "must be a duration of at most 24h, such as 3600s"}
            return 400, {"status": 400, "code": "invalid_argument", "message": "Invalid argument",
                         "fields": [field_error]}, {}
        self._count("access_token")
        # CreateAccessTokenReply: the token alone, no expiry (its JWT has one).
        return 200, {"token": self._new_session(user_id, organization_id, validity)[0]}, {}

    def _authenticate(self, bearer: str, *, personal: bool = True) -> tuple[_Session | None, str]:
        with self._lock:
            session = self._sessions.get(bearer)
            if personal and bearer in self.personal_tokens:
                session = _Session(_PERSONAL, self.ORGANIZATION_ID, float("inf"))
        if session is None:
            return None, _UNAUTHENTICATED
        if session.organization_id in self.deactivated_organizations:
            return None, "Token rejected"
        if self.now() >= session.expires_at:
            self._count("expired_sent")
            return None, _UNAUTHENTICATED
        return session, ""

    def _issue(self, user_id: str, organization_id: str) -> dict[str, Any]:
        """A new session as a `LoginReply`."""
        value, expires = self._new_session(user_id, organization_id, self.ttl)
        token = {"id": value, "user_id": user_id, "organization_id": organization_id}
        if self.expiry_style != "jwt":
            stamp = datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            token[self.expiry_style] = stamp
        return {"token": token}

    def _new_session(self, user_id: str, organization_id: str, lifetime: float) -> tuple[str, float]:
        """A new bearer token valid for `lifetime` seconds, and its expiry (in the fake's clock)."""
        now = self.now()
        expires = now + lifetime
        value = self._jwt({"sub": user_id, "org": organization_id, "iat": int(now), "exp": expires,
                           "jti": secrets.token_hex(8)})
        with self._lock:
            self._sessions[value] = _Session(user_id, organization_id, expires)
            self.issued.append(value)
        return value, expires

    def _jwt(self, claims: dict[str, Any]) -> str:
        def encode(part: bytes) -> str:
            return base64.urlsafe_b64encode(part).rstrip(b"=").decode()

        signing_input = encode(b'{"alg":"HS256","typ":"JWT"}') + "." + encode(json.dumps(claims).encode())
        signature = hmac.digest(self._secret, signing_input.encode(), "sha256")
        return signing_input + "." + encode(signature)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
            if name != "api":
                self.events.append((time.monotonic(), name))


def _resource(method: str, path: str, body: bytes, session: _Session) -> dict[str, Any]:
    """The current user and the organization's one app, exactly as Koyeb's OpenAPI document shapes
    them (`UserReply`, `ListAppsReply`); any other request, echoed (the fake's own shape)."""
    if method == "GET" and path == "/v1/account/profile":
        user = {"id": session.user_id, "name": "Demo", "email_validated": True, "created_at": _CREATED,
                "updated_at": _CREATED, "flags": ["ACTIVE"]}
        return {"user": user}
    if method == "GET" and path == "/v1/apps":
        organization = session.organization_id
        domain = {"id": "domain-demo", "organization_id": organization, "name": f"demo-{organization}.koyeb.app",
                  "created_at": _CREATED, "updated_at": _CREATED, "status": "ACTIVE", "type": "AUTOASSIGNED",
                  "app_id": "app-demo", "deployment_group": "prod", "messages": [], "version": "1"}
        app = {"id": "app-demo", "name": "demo", "organization_id": organization, "created_at": _CREATED,
               "updated_at": _CREATED, "domains": [domain], "status": "HEALTHY", "messages": []}
        return {"apps": [app], "limit": 20, "offset": 0, "count": 1, "has_next": False}
    return {"method": method, "path": path, "body": body.decode("utf-8", "replace")}


def _validity(body: bytes) -> float | None:
    """The `validity` of an access token request, a protobuf Duration (`3600s`); None if invalid."""
    request: object = {}
    with contextlib.suppress(ValueError):
        request = json.loads(body or b"{}")
    duration = request.get("validity", f"{_DEFAULT_VALIDITY}s") if isinstance(request, dict) else None
    if not isinstance(duration, str) or not duration.endswith("s"):
        return None
    try:
        seconds = float(duration[:-1])
    except ValueError:
        return None
    return seconds if 0 < seconds <= _MAX_VALIDITY else None


class _IPv6Server(ThreadingHTTPServer):
    """The fake on an IPv6 address such as ::1 (the stdlib's server binds IPv4 only)."""

    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    # Headers and body go out in two writes: without this, Nagle's algorithm and delayed ACKs add
    # 40 ms to every keep-alive request.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        # A client that goes away mid-connection (a stopped demo worker, a client's timeout) is not an
        # error: without this, socketserver prints a traceback for each.
        try:
            super().handle()
        except ConnectionError:
            self.close_connection = True

    def _serve(self) -> None:
        fake: FakeKoyebAPI = self.server.fake  # type: ignore[attr-defined]
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            answer = fake.dispatch(self.command, self.path, headers, self._body())
        except ConnectionAbortedError:
            self.close_connection = True
            return
        status, payload, extra = answer
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", extra.pop("content-type", "application/json"))
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout test): nothing to answer

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header, in the fake API's clock (see clock_offset).
        fake: FakeKoyebAPI = self.server.fake  # type: ignore[attr-defined]
        return super().date_time_string(fake.now() if timestamp is None else timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the demo print what matters


class RedisServer:
    """A private `redis-server` on a free loopback port, for tests of `RedisTokenStore`.

    ```python
    with RedisServer() as server:
        auth = KoyebAuth(store=RedisTokenStore(server.url))
    ```

    Needs the `redis-server` program (Debian: `apt-get install redis-server`): FileNotFoundError
    without it. Nothing is written to disk but a log in a temporary directory.
    """

    port: int
    """The loopback port it listens on."""
    url: str
    """`redis://127.0.0.1:<port>/0`, for `RedisTokenStore(url)`."""

    def __init__(self) -> None:
        """Start `redis-server` and wait until it answers (10 s at most).

        Raises FileNotFoundError without the program, RuntimeError if it does not start.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (Debian: apt-get install redis-server)")
        self._directory = tempfile.TemporaryDirectory(prefix="koyeb-auth-redis-")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process = subprocess.Popen(  # noqa: S603 - redis-server from PATH, our own arguments
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._directory.name, "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_until_it_answers()
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        """The redis-server's process id: a test can stop it (SIGSTOP) to play a Redis that hangs."""
        return self._process.pid

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (if it still runs) and remove its directory."""
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._directory.cleanup()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

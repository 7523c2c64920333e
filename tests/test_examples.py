"""Every recipe in examples/ runs as a user runs it: a real process, pointed at the fake API by
KOYEB_URL, with the credentials in its environment, and it logs in once however many processes
serve it. A recipe whose framework is not installed (the `examples` extra) is skipped, saying so."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from koyeb_auth.testing import FakeKoyebAPI

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEADLINE = 120.0  # generous: a cold start of a framework on a loaded 2-core machine

pytestmark = pytest.mark.slow


def needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed: pip install -e '.[examples]'")


@pytest.fixture(params=["password", "token"])
def credentials(request: pytest.FixtureRequest, fake: FakeKoyebAPI) -> str:
    """Either way of signing in that a recipe's reader may use: KOYEB_EMAIL and KOYEB_PASSWORD, or
    a personal access token in KOYEB_TOKEN."""
    if request.param == "token":
        probe = httpx.get(f"{fake.url}/v1/apps", headers={"Authorization": f"Bearer {fake.PERSONAL_TOKEN}"})
        fake.reset_stats()
        if probe.status_code != 200:
            pytest.skip("the fake API does not accept the personal access token for API calls yet")
    return str(request.param)


def environment(fake: FakeKoyebAPI, credentials: str, **extra: str) -> dict[str, str]:
    # os.environ has no KOYEB_ variable and a HOME of the test's own (conftest's clean_environment).
    signed_in = (
        {"KOYEB_TOKEN": fake.PERSONAL_TOKEN}
        if credentials == "token"
        else {"KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}
    )
    return {**os.environ, "KOYEB_URL": fake.url, **signed_in, **extra}


def logins(credentials: str) -> int:
    """A personal access token alone is sent as is: no login."""
    return 1 if credentials == "password" else 0


def run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=DEADLINE,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen(command, cwd=EXAMPLES, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        yield server
    finally:
        server.terminate()
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def get_when_up(server: subprocess.Popen[str], url: str) -> httpx.Response:
    """The first answer of a server still starting: connection refusals are retried until DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            return httpx.get(url, timeout=30)
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                output = server.stdout.read() if server.stdout else ""
                raise AssertionError(f"the server did not answer: {output}") from None
            time.sleep(0.2)


def secrets_of(fake: FakeKoyebAPI) -> set[str]:
    return {*fake.issued, fake.PASSWORD, fake.PERSONAL_TOKEN}


def test_the_sdk_script_lists_the_apps_with_the_sync_and_the_async_sdk(fake: FakeKoyebAPI, credentials: str) -> None:
    needs("koyeb.api")
    output = run([sys.executable, "sdk_apps.py"], environment(fake, credentials))
    assert output.split("\n") == ["sync demo", "async demo", ""]
    assert fake.stats.get("login", 0) == logins(credentials)
    assert not any(secret in output for secret in secrets_of(fake))


def test_the_github_actions_step_lists_the_apps_in_the_job_summary(
    fake: FakeKoyebAPI, credentials: str, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    env = environment(fake, credentials, GITHUB_STEP_SUMMARY=str(summary))
    assert run([sys.executable, "github-actions/koyeb_apps.py"], env) == "demo\n"
    assert summary.read_text() == "## Koyeb apps\n\n- demo\n"
    assert fake.stats.get("login", 0) == logins(credentials)


def test_the_github_actions_workflow_runs_the_script_with_the_token_from_the_secrets() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions" / "koyeb-apps.yml").read_text())
    assert workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    steps = workflow["jobs"]["apps"]["steps"]
    [step] = [step for step in steps if "koyeb_apps.py" in step.get("run", "")]
    script = step["run"].split()[-1]
    assert (EXAMPLES.parent / script).is_file()
    assert step["env"] == {"KOYEB_TOKEN": "${{ secrets.KOYEB_TOKEN }}"}


def test_the_fastapi_app_shares_one_client_opened_by_its_lifespan(fake: FakeKoyebAPI, credentials: str) -> None:
    needs("fastapi")
    needs("uvicorn")
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--port", str(port), "--log-level", "warning"]
    with serving(command, environment(fake, credentials)) as server:
        assert get_when_up(server, f"http://127.0.0.1:{port}/apps").json() == ["demo"]
        assert httpx.get(f"http://127.0.0.1:{port}/apps", timeout=30).json() == ["demo"]
    assert fake.stats.get("login", 0) == logins(credentials)
    assert fake.stats["api"] == 2


def test_the_django_view_lists_the_apps(fake: FakeKoyebAPI, credentials: str) -> None:
    needs("django")
    port = free_port()
    command = [sys.executable, "django_app.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with serving(command, environment(fake, credentials)) as server:
        assert get_when_up(server, f"http://127.0.0.1:{port}/apps").json() == ["demo"]
        assert httpx.get(f"http://127.0.0.1:{port}/apps", timeout=30).json() == ["demo"]
    assert fake.stats.get("login", 0) == logins(credentials)


def test_gunicorn_workers_forked_after_preload_log_in_once(fake: FakeKoyebAPI, credentials: str) -> None:
    needs("gunicorn")
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--preload", "--workers", "3", "--bind", f"127.0.0.1:{port}",
               "gunicorn_app:app"]
    with serving(command, environment(fake, credentials)) as server:
        answers = [get_when_up(server, f"http://127.0.0.1:{port}/apps").json() for _ in range(12)]
    assert answers == [["demo"]] * 12
    assert fake.stats.get("login", 0) == logins(credentials)
    assert fake.stats["api"] == 12


def test_a_celery_pool_runs_the_tasks_and_logs_in_once(fake: FakeKoyebAPI, credentials: str, redis_url: str) -> None:
    needs("celery")
    env = environment(fake, credentials, CELERY_BROKER_URL=redis_url)
    worker = [sys.executable, "-m", "celery", "-A", "celery_worker", "worker", "--pool", "prefork",
              "--concurrency", "3", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
              "--without-heartbeat"]
    with serving(worker, env):
        output = run([sys.executable, "celery_worker.py"], env)
    assert output == "demo\n" * 8
    assert fake.stats.get("login", 0) == logins(credentials)
    assert fake.stats["api"] == 8

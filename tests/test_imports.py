"""What `import koyeb_auth` loads and does: each in a fresh interpreter, since imports are process-wide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here starts a process or a server

EXTRAS = {"redis": "redis", "httpx2": "httpx2", "aiohttp": "aiohttp", "koyeb": "sdk"}


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_importing_the_package_loads_no_client_lock_or_yaml() -> None:
    result = run("import sys, koyeb_auth\n"
                 "print(sorted({'httpx', 'requests', 'filelock', 'yaml', 'platformdirs'} & set(sys.modules)))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_public_name_still_resolves() -> None:
    code = ("import koyeb_auth\n"
            "for name in koyeb_auth.__all__: getattr(koyeb_auth, name)\n"
            "print(koyeb_auth.KoyebAuth.__module__, 'KoyebAuth' in dir(koyeb_auth),\n"
            "      'RedisTokenStore' in dir(koyeb_auth))")
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["koyeb_auth.auth", "True", "True"]


@pytest.mark.parametrize("missing", sorted(EXTRAS))
def test_star_import_works_without_an_extra(missing: str) -> None:
    # Hidden the way tests/test_integrations.py hides an extra: the module cannot be imported.
    code = (f"import sys; sys.modules[{missing!r}] = None\n"
            "from koyeb_auth import *\n"
            "print(KoyebAuth.__name__, FileTokenStore.__name__, MissingExtraError.__name__)")
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["KoyebAuth", "FileTokenStore", "MissingExtraError"]


def test_an_integration_without_its_extra_is_still_a_clear_error() -> None:
    result = run("import sys; sys.modules['redis'] = None\nimport koyeb_auth\nkoyeb_auth.RedisTokenStore")
    assert result.returncode == 1
    assert "pip install './koyeb-auth[redis]'" in result.stderr and "MissingExtraError" in result.stderr


def test_the_library_logs_nowhere_until_the_application_says_so(tmp_path: Path) -> None:
    # A corrupt cache is logged at WARNING. Without a handler of its own, the library's records would
    # reach Python's last-resort handler, which prints them on stderr.
    cache = tmp_path / "tokens.json"
    cache.write_text("not json")
    cache.chmod(0o600)
    code = ("import logging, koyeb_auth\n"
            f"assert koyeb_auth.FileTokenStore({str(cache)!r}).load('k') is None\n"
            "print([type(h).__name__ for h in logging.getLogger('koyeb_auth').handlers])")
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['NullHandler']"
    assert result.stderr == ""
    configured = run("import logging; logging.basicConfig()\n" + code)
    assert "Ignoring the token cache" in configured.stderr


def test_what_is_asked_of_the_library_logger_is_done_once_it_exists() -> None:
    code = ("import sys\nfrom koyeb_auth import _logs as logs\n"
            "seen = []\n"
            "logs.when_made(seen.append)\nlogs.when_made(seen.append)  # asked twice before: done once\n"
            "before = (list(seen), 'logging' in sys.modules)\n"
            "logs.logger('koyeb_auth.wait')\n"
            "logs.when_made(seen.append)  # asked after: done at once\n"
            "print(before, [logger.name for logger in seen],\n"
            "      [type(handler).__name__ for handler in seen[0].handlers])")
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "([], False) ['koyeb_auth', 'koyeb_auth'] ['NullHandler']"

"""KoyebAuth and the SDK helpers type-check in a user's code under `mypy --strict`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TYPING = Path(__file__).with_name("typing")


@pytest.mark.slow
def test_clients_and_sdk_helpers_type_check_in_users_code(tmp_path: Path) -> None:
    pytest.importorskip("niquests")
    pytest.importorskip("koyeb.api")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(TYPING / "mypy.ini"), "--cache-dir", str(tmp_path),
         "--no-error-summary", str(TYPING / "clients.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""The package as an index and a distribution see it: built, checked by twine, tested from its sdist.

One build for the module (about 5 s): the sdist and the wheel, as `python -m build` makes them,
from a copy of the source tree, so the checkout gets no build droppings.
"""

from __future__ import annotations

import email
import email.message
import importlib
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import koyeb_auth
from koyeb_auth import _version

pytestmark = pytest.mark.slow  # every test here starts a process or a server

ROOT = Path(__file__).parents[1]
# What a build must not see or ship: environments, caches and earlier builds.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                    ".*_cache", ".hypothesis")
# The sdist is a source to test from: the whole of these, and these files at its root.
SHIPPED_TREES = ("tests", "benchmarks", "docs", "examples")  # tests/test_examples.py runs examples/
SHIPPED_FILES = ("README.md", "CHANGELOG.md", "LICENSE", "SECURITY.md", "pyproject.toml", "mkdocs.yml")
REQUIRED_CLASSIFIERS = {
    "Development Status :: 4 - Beta",
    "Intended Audience :: Developers",
    "Operating System :: POSIX :: Linux",
    "Operating System :: MacOS",
    "Operating System :: Microsoft :: Windows",
    *(f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)),
    "Typing :: Typed",
}


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    unpacked: Path  # the sdist, extracted


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    dist = work / "dist"
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,), (wheel,) = dist.glob("*.tar.gz"), dist.glob("*.whl")
    with tarfile.open(sdist) as archive:
        # The "data" filter where Python has it (3.10.12+): no links or paths out of the directory.
        archive.extractall(work / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (unpacked,) = (work / "unpacked").iterdir()
    return Built(sdist, wheel, unpacked)


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_twine_check_strict_passes_on_the_sdist_and_the_wheel(built: Built) -> None:
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_metadata_has_the_license_file_the_classifiers_and_the_one_version(built: Built) -> None:
    metadata = wheel_metadata(built.wheel)
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(built.wheel) as archive:
        licenses = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert len(licenses) == 1
        assert "Copyright (c) 2026 The koyeb-auth maintainers" in archive.read(licenses[0]).decode()
    classifiers = set(metadata.get_all("Classifier") or [])
    assert classifiers >= REQUIRED_CLASSIFIERS, REQUIRED_CLASSIFIERS - classifiers
    # PEP 639: the license expression replaces the License classifiers (setuptools refuses both).
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Author"] and metadata["Keywords"]
    # One version: the constant the package exposes is the one the build wrote.
    assert metadata["Version"] == _version.__version__ == koyeb_auth.__version__
    assert built.wheel.name.startswith(f"koyeb_auth-{_version.__version__}-")


def test_the_version_is_written_in_one_place() -> None:
    # (Read as text: tomllib is Python 3.11+.)
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.MULTILINE)
    assert re.search(r'^dynamic = \["version"\]', project, re.MULTILINE)
    assert 'version = { attr = "koyeb_auth._version.__version__" }' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", _version.__version__)
    written = [path.relative_to(ROOT).as_posix() for path in (ROOT / "koyeb_auth").rglob("*.py")
               if re.search(r"^__version__ = ", path.read_text(), re.MULTILINE)]
    assert written == ["koyeb_auth/_version.py"]
    # PEP 639 license expressions need setuptools 77.
    assert 'requires = ["setuptools>=77"]' in pyproject


def test_no_address_the_project_does_not_have(built: Built) -> None:
    # koyeb-auth has no public home yet: its metadata names no URL, and no text points at a made-up one.
    assert wheel_metadata(built.wheel).get_all("Project-URL") is None
    texts = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "SECURITY.md", *(ROOT / "docs").glob("*.md"),
             *(ROOT / "koyeb_auth").rglob("*.py")]
    assert [str(text) for text in texts if "github.com/koyeb-auth" in text.read_text()] == []


def test_the_sdist_ships_the_whole_test_tree_benchmarks_docs_and_texts(built: Built) -> None:
    for tree in SHIPPED_TREES:
        expected = {p.relative_to(ROOT) for p in (ROOT / tree).rglob("*") if p.is_file() and _is_source(p)}
        shipped = {p.relative_to(built.unpacked) for p in (built.unpacked / tree).rglob("*") if p.is_file()}
        assert expected and expected <= shipped, sorted(map(str, expected - shipped))
    for name in SHIPPED_FILES:
        assert (built.unpacked / name).read_bytes() == (ROOT / name).read_bytes()
    for helper in ("__init__.py", "conftest.py", "clients.py", "worker.py", "redis_server.py", "recorder.py"):
        assert (built.unpacked / "tests" / helper).is_file()


def test_the_wheel_ships_every_module_of_the_package_and_py_typed(built: Built) -> None:
    package = ROOT / "koyeb_auth"
    expected = {str(p.relative_to(ROOT)) for p in package.rglob("*.py")} | {"koyeb_auth/py.typed"}
    with zipfile.ZipFile(built.wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("koyeb_auth/")}
    assert expected == shipped, (sorted(expected - shipped), sorted(shipped - expected))
    assert {f"koyeb_auth/{sub}/__init__.py" for sub in ("stores", "integrations", "cli")} <= shipped


def test_the_package_shows_what_is_public_by_its_names() -> None:
    # Folders by concept, internals named with a leading underscore: what a reader may import is
    # what is left, and it stays short.
    public = {p.stem if p.is_file() else p.name for p in (ROOT / "koyeb_auth").iterdir()
              if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert public == {"auth", "cli", "errors", "events", "integrations", "stores", "testing"}


def test_every_public_name_and_method_has_a_docstring() -> None:
    # What help() and the editor show, and what the API reference (mkdocstrings) renders: without a
    # docstring, help(KoyebAuth) said "Initialize self." and a store's methods said nothing.
    documented = dict(_public_functions_and_classes())
    missing = sorted(name for name, doc in documented.items() if not (doc or "").strip())
    assert not missing, f"{len(missing)} of {len(documented)} public names lack a docstring: {missing}"
    assert len(documented) > 100, sorted(documented)  # the walk found the package, not nothing
    assert {"koyeb_auth.auth.KoyebAuth.__init__", "koyeb_auth.stores._redis.RedisTokenStore.load",
            "koyeb_auth.testing.FakeKoyebAPI"} <= documented.keys()


def _public_functions_and_classes() -> Iterator[tuple[str, str | None]]:
    """(qualified name, docstring) of each public class and function of the public modules, and
    each public method (and `__init__`, `__call__`) the package itself defines on those classes."""
    for module in _public_modules():
        for name in _public_names(module):
            value = getattr(module, name)
            if inspect.isfunction(value):
                yield f"{value.__module__}.{value.__qualname__}", value.__doc__
            elif inspect.isclass(value):
                yield f"{value.__module__}.{value.__qualname__}", value.__dict__.get("__doc__")
                yield from _public_methods(value)


def _public_modules() -> Iterator[ModuleType]:
    yield koyeb_auth
    for found in pkgutil.walk_packages(koyeb_auth.__path__, "koyeb_auth."):
        if not any(part.startswith("_") for part in found.name.split(".")):
            yield importlib.import_module(found.name)


def _public_names(module: ModuleType) -> set[str]:
    if not hasattr(module, "__all__"):  # koyeb_auth.testing: what it defines
        return {name for name, value in vars(module).items()
                if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__}
    names = set(module.__all__)
    if hasattr(module, "__path__"):  # a package: also the names it loads on first use (RedisTokenStore)
        names |= {name for name in dir(module) if not name.startswith("_")
                  and str(getattr(getattr(module, name), "__module__", "")).startswith("koyeb_auth")}
    return names


def _public_methods(cls: type) -> Iterator[tuple[str, str | None]]:
    for klass in cls.__mro__:
        for name, member in vars(klass).items():
            function = member.fget if isinstance(member, property) else inspect.unwrap(member)
            function = getattr(function, "__func__", function)  # a classmethod's or staticmethod's
            code = getattr(function, "__code__", None)
            # Written in the package: not a dataclass's generated __init__, not a base from a library.
            if (name.startswith("_") and name not in ("__init__", "__call__")) or code is None \
                    or not Path(code.co_filename).is_relative_to(Path(koyeb_auth.__file__).parent):
                continue
            yield f"{function.__module__}.{function.__qualname__}", function.__doc__


def test_the_tests_of_the_unpacked_sdist_collect_and_one_file_passes(built: Built) -> None:
    # The sdist's own code, not the checkout's: PYTHONPATH puts it first, and the child processes
    # the tests start inherit it.
    env = {**os.environ, "PYTHONPATH": str(built.unpacked), "PYTHONDONTWRITEBYTECODE": "1"}
    where = subprocess.run([sys.executable, "-c", "import koyeb_auth; print(koyeb_auth.__file__)"],
                           cwd=built.unpacked, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert Path(where.stdout.strip()).is_relative_to(built.unpacked)

    pytest_args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    collected = subprocess.run([*pytest_args, "--collect-only", "-q"], cwd=built.unpacked, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    assert "error" not in collected.stdout.lower().splitlines()[-1], collected.stdout[-3000:]
    modules = {line.split("::", 1)[0] for line in collected.stdout.splitlines() if "::" in line}
    assert modules == {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py")}

    ran = subprocess.run([*pytest_args, "-q", "tests/test_config.py"], cwd=built.unpacked, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert re.search(r"^\d+ passed", ran.stdout.splitlines()[-1]), ran.stdout[-3000:]


def _is_source(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix != ".pyc"

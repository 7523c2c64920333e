"""What a cold login runs through at the I/O edges: the session call, the token's forms, the file store."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.calls import COLD_LOGIN, FIRST_REQUEST, measure

# The I/O edges of a cold login, whose share of it is bounded here.
EDGES = ("_token.py", "_session_api.py", "_transport.py", "stores/_file.py", "stores/_private_file.py",
         "stores/_protocol.py")


@pytest.fixture(scope="module")
def paths() -> dict[str, Counter[tuple[str, str]]]:
    return measure()


@pytest.mark.slow
def test_a_cold_login_runs_through_at_most_60_functions_in_12_files(paths: dict[str, Counter[tuple[str, str]]]) -> None:
    """Issue 23's bound, once the configuration is read (the first request of a KoyebAuth reads it
    first: `benchmarks.calls` gives both)."""
    cold = paths[COLD_LOGIN]
    assert len(cold) <= 60, sorted(cold)
    assert len({file for file, _ in cold}) <= 12


@pytest.mark.slow
def test_a_cold_login_runs_through_at_most_35_functions_at_the_io_edges(
        paths: dict[str, Counter[tuple[str, str]]]) -> None:
    cold = paths[FIRST_REQUEST]
    functions = sorted(f"{file}:{function}" for file, function in cold if file in EDGES)
    assert len(functions) <= 35, functions
    # A miss loads no entry, and a dispatcher or a render lambda is no step of its own.
    assert not {"_token.py:token_from_entry", "_session_api.py:session_token",
                "stores/_file.py:FileTokenStore._write.<locals>.<lambda>"} & set(functions)


@pytest.fixture(scope="module")
def cold(paths: dict[str, Counter[tuple[str, str]]]) -> Counter[tuple[str, str]]:
    return paths[FIRST_REQUEST]


@pytest.mark.slow
def test_a_cold_login_normalizes_the_api_url_once_and_sends_through_at_most_10_transport_functions(
    cold: Counter[tuple[str, str]],
) -> None:
    # Normalized where it is read (the configuration): the Origin takes it as it is.
    assert cold[("_origin.py", "normalize_api_url")] == 1
    # The deadline's wrapper of httpcore's backend is a record (no constructor of ours), and the
    # environment's proxies are looked at only when a call fails.
    transport = sorted(function for file, function in cold if file == "_transport.py")
    assert len(transport) <= 10, transport
    assert not {"SessionClient._proxy_problem", "_DeadlineBackend.__init__"} & set(transport)


@pytest.mark.slow
def test_explicit_credentials_are_resolved_in_at_most_6_functions_checking_each_argument_given_once(
    cold: Counter[tuple[str, str]],
) -> None:
    config = {function: calls for (file, function), calls in cold.items() if file == "_config.py"}
    assert config["_check_text"] == 3, config  # email=, password=, api_url=: not the arguments left out
    assert len(config) <= 6, sorted(config)

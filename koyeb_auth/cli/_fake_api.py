"""`koyeb-auth fake-api`: the bundled fake Koyeb API in the foreground, with the faults asked for.

It prints the fake's personal access token: a public test value (`FakeKoyebAPI.PERSONAL_TOKEN`) that
only the fake accepts, printed so that a shell can point Koyeb tools at the fake in one line.
"""

from __future__ import annotations

import argparse

from ..testing import Action, FakeKoyebAPI


def run_fake_api(args: argparse.Namespace) -> int:
    fake = FakeKoyebAPI(ttl=args.ttl, host=args.host, port=args.port, without=args.without,
                        latency=args.latency, clock_offset=args.skew)
    fake.workos_users.update(args.workos)
    for action, times in args.fail:
        fake.fail(action, times=times)
    fake.bind()
    print(banner(fake, args.fail), flush=True)
    fake.serve_forever()
    return 0


def banner(fake: FakeKoyebAPI, failing: list[tuple[Action, int]]) -> str:
    """What the fake is, how to use it, and the faults it plays. The first line's fifth word is its
    URL (scripts read it)."""
    variables = " ".join(f"{name}={value}" for name, value in fake.environ.items())
    lines = [
        f"Fake Koyeb API at {fake.url} (Ctrl-C stops it)",
        "Its personal access token is the fake's own public test value (no real Koyeb account accepts it):",
        f"  export {variables}",
        "  koyeb-auth token    # or KoyebAuth() in Python, with these variables",
        f"Its legacy account (email and password): {fake.EMAIL} / {fake.PASSWORD}",
        f"Counters: GET {fake.url}/_fake/stats; revoke every session: POST {fake.url}/_fake/revoke",
    ]
    return "\n".join(lines + _faults(fake, failing))


def _faults(fake: FakeKoyebAPI, failing: list[tuple[Action, int]]) -> list[str]:
    faults = [f"the next {times} {action} call(s) answer 503" for action, times in failing]
    faults += [f"{endpoint} answers {status}" for endpoint, status in sorted(fake.dropped.items())]
    if fake.latency:
        faults.append(f"every answer waits {fake.latency:g} s")
    if fake.clock_offset:
        ahead = "ahead of" if fake.clock_offset > 0 else "behind"
        faults.append(f"its clock runs {abs(fake.clock_offset):g} s {ahead} this machine's")
    faults += [f"{email} signs in through WorkOS" for email in sorted(fake.workos_users)]
    return ["Faults:", *(f"  {fault}" for fault in faults)] if faults else []

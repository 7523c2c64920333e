"""The `koyeb-auth` command: its grammar, login state and profiles, and the demo.

`main` is the console entry point (`koyeb_auth.cli:main`, and `python -m koyeb_auth`). A warm
`koyeb-auth token` loads no HTTP client: each subcommand imports what it needs when it runs.
"""

from ._command import main

__all__ = ["main"]

"""The version of koyeb-auth: the one place it is written.

A plain constant in a module of its own, so that setuptools reads it at build time without
importing the package (`[tool.setuptools.dynamic]` in pyproject.toml) and reading it costs nothing.
"""

__version__ = "0.2.0"

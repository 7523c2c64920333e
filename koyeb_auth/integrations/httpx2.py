"""KoyebAuth for httpx2, the maintained fork of httpx.

httpx2 accepts as `auth=` only its own `httpx2.Auth` (anything else callable would be wrapped as a
plain function, with no 401 retry). This subclass is both, so the flows, the guarantees and the
shared tokens are those of KoyebAuth.
"""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

from .._extras import require
from ..auth import KoyebAuth

require("httpx2", "httpx2", "Httpx2KoyebAuth")
import httpx2  # noqa: E402  (after the check that names the extra)


# The two Auth base classes declare the same flow methods over their own Request types.
class Httpx2KoyebAuth(KoyebAuth, httpx2.Auth):  # type: ignore[misc]
    """`KoyebAuth` for `httpx2.Client` and `httpx2.AsyncClient`; it still works with httpx and requests.

    ```python
    with httpx2.Client(base_url="https://app.koyeb.com", auth=Httpx2KoyebAuth()) as client:
        client.get("/v1/apps")
    ```
    """

    httpx_module: ClassVar[ModuleType] = httpx2

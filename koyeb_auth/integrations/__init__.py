"""KoyebAuth in the clients beyond httpx and requests, one module each, each needing its extra.

`niquests` (NiquestsAsyncKoyebAuth), `httpx2` (Httpx2KoyebAuth), `aiohttp` (KoyebAuthMiddleware)
and `sdk` (Koyeb's own SDK). Nothing is imported here: importing one of them loads its client.
"""

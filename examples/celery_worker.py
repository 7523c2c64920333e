"""A Celery worker whose tasks call the Koyeb API; as a script, it sends tasks and prints their results.

    pip install -e '.[redis,examples]'    # in a checkout of koyeb-auth: it, redis and Celery
    KOYEB_TOKEN=... celery -A celery_worker worker --concurrency 4    # the workers
    python celery_worker.py                                            # a client

`CELERY_BROKER_URL` names the broker and the result backend (default: a local Redis). One
KoyebAuth per worker process, built at import: construction does no I/O, a forked pool process
gets fresh locks, and the pool's processes share the token through the cache file, so a pool logs
in once. Tasks take no credentials: each process reads its own environment.
"""

import os

import requests
from celery import Celery

from koyeb_auth import KoyebAuth

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
app = Celery("celery_worker", broker=BROKER, backend=BROKER)
AUTH = KoyebAuth()  # credentials from KOYEB_TOKEN (or ~/.koyeb.yaml); KOYEB_URL for another API
SESSION = requests.Session()
SESSION.auth = AUTH


@app.task
def app_names() -> list[str]:
    response = SESSION.get(f"{AUTH.settings.api_url}/v1/apps", timeout=30)
    response.raise_for_status()
    return [item["name"] for item in response.json()["apps"]]


def main() -> None:
    results = [app_names.delay() for _ in range(8)]
    for result in results:
        print(*result.get(timeout=60))


if __name__ == "__main__":
    main()

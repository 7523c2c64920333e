"""A Django view that calls the Koyeb API, in one file.

    pip install -e '.[examples]'    # in a checkout of koyeb-auth: it and Django
    KOYEB_TOKEN=... python django_app.py runserver

One KoyebAuth for the process: construction does no I/O, so it is built at import, and the first
request logs in. Django's threads share it and its token (one login, one refresh per token
lifetime), and so do the processes of a WSGI server, through the cache file. In a project, AUTH
goes in a module of its own, and the view in views.py.
"""

import os
import secrets
import sys

import requests
from django.conf import settings
from django.core.management import execute_from_command_line
from django.http import HttpRequest, JsonResponse
from django.urls import path

from koyeb_auth import KoyebAuth

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(32),
)

AUTH = KoyebAuth()  # credentials from KOYEB_TOKEN (or ~/.koyeb.yaml); KOYEB_URL for another API


def apps(request: HttpRequest) -> JsonResponse:
    response = requests.get(f"{AUTH.settings.api_url}/v1/apps", auth=AUTH, timeout=30)
    response.raise_for_status()
    return JsonResponse([app["name"] for app in response.json()["apps"]], safe=False)


urlpatterns = [path("apps", apps)]

if __name__ == "__main__":
    execute_from_command_line(sys.argv)

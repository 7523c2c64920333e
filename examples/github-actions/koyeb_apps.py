"""A GitHub Actions step: list the Koyeb apps, and add them to the job's summary page.

The workflow (koyeb-apps.yml, beside this file) passes a personal access token from the
repository's secrets as `KOYEB_TOKEN`. A runner starts empty, so the token cache lives as long as
the job; `KOYEB_URL` points at another API.
"""

import os

import httpx

from koyeb_auth import KoyebAuth


def main() -> None:
    auth = KoyebAuth()
    with httpx.Client(base_url=auth.settings.api_url, auth=auth, timeout=30) as client:
        response = client.get("/v1/apps")
        response.raise_for_status()
        names = [app["name"] for app in response.json()["apps"]]
    for name in names:
        print(name)
    # Each step's Markdown summary is shown on the run's page.
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(summary, "a", encoding="utf-8") as file:
            file.write("## Koyeb apps\n\n" + "".join(f"- {name}\n" for name in names))


if __name__ == "__main__":
    main()

"""The Airflow admin's credentials of this checkout's deployment: what `AirflowClient` and
`python -m longtail.deploy credentials` read. A module of its own so that the client does not
import the manager (which imports the client)."""

from __future__ import annotations

from pathlib import Path

from longtail.deploy.secretstore import load, secrets_dir
from longtail.deploy.settings import ADMIN_USER, Settings


def credentials(repo: Path | None = None) -> dict[str, str]:
    """{url, username, password} of this checkout's deployment (the admin user)."""
    settings = Settings.from_env(repo=repo)
    secrets = load(secrets_dir(settings.repo))
    return {"url": settings.api_url, "username": ADMIN_USER, "password": secrets.admin_password}

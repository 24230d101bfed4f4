#!/bin/sh
# Entrypoint of the longtail image (docker/Dockerfile): runs the container's command ("$@") after
# one step of `make up`'s. With LONGTAIL_ADMIN_PASSWORD set (docker/compose.yaml gives it to the
# api-server only) it writes the Simple auth manager's password file ({"admin": "<password>"},
# 0600) at AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE with the code `make up` uses
# (longtail.deploy.secretstore.write_passwords_file), then drops the variable, so the server and
# what it starts never see it.
set -eu
if [ -n "${LONGTAIL_ADMIN_PASSWORD:-}" ]; then
    python - <<'PY'
import os
from pathlib import Path

from longtail.deploy.secretstore import write_passwords_file

target = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
# "admin:admin" (user:role): the first configured user gets the password
user = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")[0].split(":")[0]
target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
written = write_passwords_file(target.parent, user, os.environ["LONGTAIL_ADMIN_PASSWORD"])
if written != target:
    raise SystemExit(f"entrypoint: the password file must be named {written.name}: {target}")
PY
fi
unset LONGTAIL_ADMIN_PASSWORD
exec "$@"

"""PostgreSQL setup for the deployment: install Debian's server package when it is missing, and
create (or update) Airflow's role and database. The role's password comes from the environment
(LONGTAIL_DEPLOY_DB_PASSWORD), never from argv.

`python -m longtail.deploy.pgsetup --socket-dir D --port P`: connects as the superuser over the
server's private Unix socket (trust, the socket folder is 0700), so it runs as root or as the
server's OS user.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from longtail.deploy.settings import find_pg_bin


class PostgresInstallError(RuntimeError):
    pass


def ensure_installed() -> Path:
    """Debian's server binaries (/usr/lib/postgresql/<v>/bin); apt-get installs them if absent."""
    found = find_pg_bin()
    if found:
        return found
    if os.geteuid() != 0:
        raise PostgresInstallError(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb) and this is "
            "not root: install them with `sudo apt-get install -y postgresql`, then run again"
        )
    if not shutil.which("apt-get"):
        raise PostgresInstallError(
            "PostgreSQL server binaries not found and there is no apt-get: install PostgreSQL's "
            "server package so that /usr/lib/postgresql/<version>/bin/initdb exists"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("longtail deploy: installing PostgreSQL (apt-get install -y postgresql)", flush=True)
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise PostgresInstallError(
                f"`{' '.join(argv)}` failed ({done.returncode}):\n{done.stderr[-2000:]}"
            )
    found = find_pg_bin()
    if not found:
        raise PostgresInstallError("apt-get installed postgresql but no initdb was found")
    return found


def bootstrap(socket_dir: str, port: int, superuser: str, role: str, database: str, password: str):
    """Create role (LOGIN, this password) and its database when absent; reset the password."""
    import psycopg2
    from psycopg2 import sql

    con = psycopg2.connect(host=socket_dir, port=port, user=superuser, dbname="postgres")
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(
                sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if not cur.fetchone():
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )
                print(f"created database {database}")
            print(f"{verb.lower()}d role {role}")
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--superuser", default="postgres")
    parser.add_argument("--role", default="airflow")
    parser.add_argument("--database", default="airflow")
    args = parser.parse_args(argv)
    password = os.environ.get("LONGTAIL_DEPLOY_DB_PASSWORD")
    if not password:
        print("LONGTAIL_DEPLOY_DB_PASSWORD is not set", file=sys.stderr)
        return 2
    bootstrap(args.socket_dir, args.port, args.superuser, args.role, args.database, password)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

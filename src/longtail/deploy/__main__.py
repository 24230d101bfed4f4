"""`python -m longtail.deploy up|down|status|credentials [--print-env]`.

up           start PostgreSQL, Spark (master + worker) and Airflow (api-server, scheduler,
             dag-processor, triggerer) on 127.0.0.1 and wait until each answers
down         stop exactly what `up` started
status       each service, its pid, alive/dead, its URL (`--check`: exit 1 unless all alive)
credentials  JSON {url, username, password} of the Airflow admin
--print-env  also print `export ...` lines of the Airflow environment (secrets included) for
             `source <(python -m longtail.deploy status --print-env)`; the table goes to stderr
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from longtail.deploy.credentials import credentials
from longtail.deploy.manager import (
    DeployError,
    Deployment,
    down,
    exclusive,
    export_lines,
    print_json,
    status,
    up,
)
from longtail.deploy.pgsetup import PostgresInstallError, ensure_installed
from longtail.deploy.secretstore import SecretsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m longtail.deploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("up", "down", "status", "credentials"))
    parser.add_argument("--print-env", action="store_true")
    parser.add_argument("--check", action="store_true", help="status: exit 1 unless all alive")
    args = parser.parse_args(argv)
    try:
        if args.command == "credentials":
            print_json(credentials())
            return 0
        if args.command == "up":
            ensure_installed()
            dep = Deployment.load(create_secrets=True)
            # with --print-env, stdout carries only the export lines
            with (
                exclusive(dep.settings),
                contextlib.redirect_stdout(sys.stderr if args.print_env else sys.stdout),
            ):
                rc = up(dep)
            if args.print_env:
                sys.stdout.write(export_lines(dep.airflow_env()))
            return rc
        dep = Deployment.load(require_secrets=args.print_env)
        if args.command == "down":
            with exclusive(dep.settings):
                return down(dep)
        rows = status(dep, out=sys.stderr if args.print_env else sys.stdout)
        if args.print_env:
            sys.stdout.write(export_lines(dep.airflow_env()))
        if args.check and any(r["state"] != "alive" for r in rows):
            return 1
        return 0
    except (DeployError, PostgresInstallError, SecretsError, ValueError) as exc:
        print(f"longtail deploy: ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

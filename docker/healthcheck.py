"""Health check of a container of docker/compose.yaml: one try of a check that `make up` declares
in longtail.deploy.topology, run by the same code (longtail.deploy.health.probe).

    python /opt/longtail/docker/healthcheck.py KIND TARGET [EXPECT]

KIND: http (TARGET answers 200), spark_master (TARGET's JSON status ALIVE) or spark_worker
(TARGET's JSON lists an ALIVE worker whose web UI is on port EXPECT). Exit 0 when it passes, 1
otherwise (Docker's contract); prints what it saw.
"""

from __future__ import annotations

import sys

from longtail.deploy.health import probe
from longtail.deploy.topology import HealthCheck

KINDS = ("http", "spark_master", "spark_worker")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[0] not in KINDS:
        print(f"usage: healthcheck.py {{{','.join(KINDS)}}} TARGET [EXPECT]", file=sys.stderr)
        return 1
    kind, target, *expect = argv
    ok, seen = probe(HealthCheck(kind, target=target, expect=expect[0] if expect else ""))
    print(seen)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""spark-submit entry point of every stage: `run_stage.py <stage> --config-json '{...}'` (or
`--field value` arguments). The stage's module comes from longtail.registry; its logic lives in
longtail.stages.<stage>."""

import sys

from longtail import registry
from longtail.errors import PERMANENT_EXIT_CODE


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in registry.BY_NAME:
        print(f"usage: run_stage.py <{'|'.join(registry.NAMES)}> [args]", file=sys.stderr)
        return PERMANENT_EXIT_CODE  # no retry makes a stage exist
    return registry.stage(argv[0]).load().main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""`airflow` as `make run` starts it: the real CLI, then an exit that skips tearing down the
interpreter.

A Python process that has imported Airflow takes about 1.8 s to exit after its command is done
(measured here: a one-task `airflow dags test` printed its run as finished, then its process
ran no Python code for 1.8 s), freeing the objects of every imported module one by one. `make
run` waits for that every night. Here the command runs as `airflow` would run it; then any
other non-daemon thread is joined, the exit handlers run (logging's flush, Airflow's own) and
the streams are flushed, and the process ends with the command's exit status without the
teardown. An exception other than SystemExit ends the process as usual (traceback, status 1).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def _status(code: object) -> int:
    """The exit status of a command that returned `code` or raised SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what SystemExit("message") prints
    return 1


def main(argv: list[str] | None = None) -> None:
    sys.argv = ["airflow", *(sys.argv[1:] if argv is None else argv)]
    from airflow.__main__ import main as airflow_main

    try:
        status = _status(airflow_main())
    except SystemExit as exc:
        status = _status(exc.code)
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()

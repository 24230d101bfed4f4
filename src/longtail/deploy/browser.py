"""A Chromium for the browser tests (Playwright drives the system's Chromium, never a download).

    from longtail.deploy.browser import CHROMIUM_ARGS, chromium_path
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)

Playwright's own browser download needs the internet; Debian's `chromium` package comes from the
distribution's mirror instead. `chromium_path()` finds a Chromium or Chrome on PATH and, when
none is there and this process is root (a fresh CI machine), installs Debian's `chromium`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags that work headless in a container without a GPU, a sandbox or the internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "no Chromium found on PATH (looked for {names}); install Debian's chromium "
    "(`sudo apt-get update && sudo apt-get install -y chromium`) or put a Chromium or "
    "Google Chrome on PATH"
)


class ChromiumNotFound(RuntimeError):
    pass


def _on_path() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def chromium_path(install: bool = True, timeout_s: int = 900) -> str:
    """The path of a Chromium/Chrome executable; installs Debian's `chromium` when root."""
    found = _on_path()
    if found:
        return found
    hint = INSTALL_HINT.format(names=", ".join(CANDIDATES))
    if not install or not _is_root() or shutil.which("apt-get") is None:
        raise ChromiumNotFound(hint)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise ChromiumNotFound(
                f"{hint}\n`{' '.join(cmd)}` failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
    found = _on_path()
    if not found:
        raise ChromiumNotFound(f"{hint}\n(apt-get installed chromium but it is not on PATH)")
    return found

"""Helpers of the run explorer's browser tests. Debian's Chromium: found on the PATH, or
installed with apt when missing and the tests run as root (as CI does); Playwright drives
it through its own driver and never downloads a browser of its own."""

from __future__ import annotations

import os
import shutil
import subprocess

from dspex_client.stack import Stack

TOKEN = "explorer-test-token"

CANDIDATES = ("chromium", "chromium-browser")
# Without these, Chromium keeps trying to reach Google's hosts, which a closed network
# refuses many times a second.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """(path, "") when Chromium is there or could be installed, else (None, why not)."""
    found = find_chromium()
    if found:
        return found, ""
    if os.geteuid() != 0:
        return None, "Debian's chromium is not installed and installing it needs root"
    if shutil.which("apt-get") is None:
        return None, "Debian's chromium is not installed and there is no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, f"{' '.join(argv)} failed: {' | '.join(tail)}"
    found = find_chromium()
    if found is None:
        return None, "apt-get installed chromium but no chromium is on the PATH"
    return found, ""


def explorer_url(stack: Stack) -> str:
    url = stack.explorer_url
    assert url is not None, "the stack runs no registry"
    return url.removesuffix("/ui")


if __name__ == "__main__":
    path, why = ensure_chromium()
    print(path or f"unavailable: {why}")

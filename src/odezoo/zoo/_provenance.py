"""What built a zoo card: the odezoo code that ran (version, commit, uncommitted changes)
and the hardware, as each card records them."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import jax


def hardware() -> str:
    """The machine, as a card states it: architecture, device kind, cores and backend."""
    devices = jax.devices()
    kind = devices[0].device_kind if devices else "unknown"
    return f"{platform.machine()} {kind}, {os.cpu_count()} cores, {jax.default_backend()}"


def source_version() -> dict:
    """The odezoo code that is running: `{"odezoo": __version__, "commit": ...,
    "modified": ...}`.

    `commit` is `git rev-parse HEAD` of the odezoo checkout this package is imported from,
    or `"unknown"` for an installed package (or when git is missing); `modified` says
    whether that checkout's `src/` has uncommitted changes (`None` when unknown). Zoo
    cards record it, so that a card that no longer reproduces can be traced to the code
    change that moved it.

    Example:

    ```python
    from odezoo.internal import source_version

    print(source_version()["odezoo"])
    ```
    """
    from .. import __version__

    root = Path(__file__).resolve().parents[3]  # <repo>/src/odezoo/zoo/_provenance.py
    commit, modified = "unknown", None
    if (root / "pyproject.toml").is_file():

        def git(*args: str) -> str | None:
            try:
                done = subprocess.run(
                    ["git", *args], cwd=root, capture_output=True, text=True, timeout=30
                )
            except (OSError, subprocess.SubprocessError):
                return None
            return done.stdout.strip() if done.returncode == 0 else None

        top = git("rev-parse", "--show-toplevel")
        if top is not None and Path(top).resolve() == root:
            commit = git("rev-parse", "HEAD") or "unknown"
            status = git("status", "--porcelain", "--", "src")
            modified = None if status is None else bool(status)
    return {"odezoo": __version__, "commit": commit, "modified": modified}


def describe_version(v: dict | None) -> str:
    """A `source_version` record as a phrase, for cards and reports."""
    if not v:
        return "not recorded (built before odezoo recorded it)"
    commit = v.get("commit", "unknown")
    text = f"odezoo {v.get('odezoo', 'unknown')}, commit {commit}"
    if v.get("modified"):
        text += " with uncommitted changes in src/"
    return text

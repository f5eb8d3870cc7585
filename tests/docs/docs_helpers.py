"""Running documented commands the way a user would, scaled down (shared by the docs tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180

# Flags set (added or replaced) on documented commands before they run: (module, subcommand) ->
# {flag: value}. Keep this short; every entry is a way in which the test differs from the doc.
SUBSTITUTIONS: dict[tuple[str, str], dict[str, str]] = {
    ("headless_renderer", "package"): {"--resolution": "96", "--samples": "1"},  # tiny, fast renders
}


def python_module(argv: list[str]) -> tuple[str, list[str]] | None:
    """(module, its arguments) for ``python -m MODULE ...``, else None."""
    if len(argv) >= 3 and argv[0] in ("python", "python3") and argv[1] == "-m":
        return argv[2], argv[3:]
    return None


def substitute(module: str, args: list[str]) -> list[str]:
    table = SUBSTITUTIONS.get((module, args[0] if args else ""), {})
    out = list(args)
    for flag, value in table.items():
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


def doc_env(root: Path) -> dict[str, str]:
    """A fresh user's environment: HOME inside the scratch folder, no library or token set, offline."""
    env = {k: v for k, v in os.environ.items() if k not in ("BUMP_STUDIO_LIBRARY", "BUMP_BACKEND_TOKEN")}
    env.update(HOME=str(root / "home"), HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    return env


def run_documented(argv: list[str], root: Path) -> subprocess.CompletedProcess:
    """Run one documented command in ``root`` (``~`` is the scratch HOME; substitutions applied)."""
    home = str(root / "home")
    argv = [home + a[1:] if a == "~" or a.startswith("~/") else a for a in argv]
    found = python_module(argv)
    if found:
        argv = [sys.executable, "-m", found[0], *substitute(*found)]
    return subprocess.run(argv, cwd=root, env=doc_env(root), capture_output=True, text=True, timeout=TIMEOUT_S)

from __future__ import annotations

from pathlib import Path

import pytest
from docs_helpers import run_documented


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """One scratch folder for every runnable block; out/demo_package is there from the start,
    so blocks that use it run on their own too (the README's first command makes the same)."""
    root = tmp_path_factory.mktemp("docs_workspace")
    (root / "home").mkdir()
    argv = ["python", "-m", "headless_renderer", "package", "--demo", "--out", "out/demo_package", "--overwrite"]
    done = run_documented(argv, root)
    assert done.returncode == 0, f"could not render the workspace's demo package:\n{done.stderr[-2000:]}"
    return root

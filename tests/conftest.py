"""Shared test set-up: keep Blender's user files out of the home folder, one torch thread."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="bump_blender_user_"))
os.environ.setdefault("OMP_NUM_THREADS", "2")

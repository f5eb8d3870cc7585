"""Shared test set-up: keep Blender's user files out of the home folder, one torch thread."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="bump_blender_user_"))
os.environ.setdefault("OMP_NUM_THREADS", "2")
# the user's registered model folders (`models add-folder`) must not change what tests load
os.environ.setdefault("BUMP_STUDIO_CONFIG", tempfile.mkdtemp(prefix="bump_studio_config_"))

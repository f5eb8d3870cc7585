"""Check in a throw-away process whether EEVEE can render here: without EGL Blender aborts the
whole process, which cannot be caught in-process.
"""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import bpy
scene = bpy.context.scene
scene.render.engine = 'BLENDER_EEVEE'
scene.render.resolution_x = scene.render.resolution_y = 16
scene.render.filepath = '/dev/null'
bpy.ops.render.render(write_still=False)
print('EEVEE_OK')
"""


def eevee_available(timeout: float = 300.0) -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, "the EEVEE probe timed out"
    if "EEVEE_OK" in proc.stdout:
        return True, ""
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
    return False, tail[0][:200]

"""The extension as users get it: the zip passes Blender's validate, installs, enables, disables cleanly."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile

import addon_utils
import bpy
from addon_helpers import MODULE, addon_module, enable

from addon.build import WHEEL_SOURCES


def test_zip_validates_and_bundles_the_blender_side_wheel(extension_zip):
    from addon.build import find_extension_cli

    done = subprocess.run([sys.executable, str(find_extension_cli()), "validate", str(extension_zip)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(extension_zip) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        wheel_name = manifest["wheels"][0].removeprefix("./")
        assert wheel_name in names and wheel_name.endswith("-py3-none-any.whl")
        assert {"__init__.py", "jobs.py", "compositor.py", "sidecar.py", "operators_bump.py"} <= names
        assert "build.py" not in names
        with zipfile.ZipFile(archive.open(wheel_name)) as wheel:
            inside = set(wheel.namelist())
    assert manifest["id"] == "bump_studio" and manifest["type"] == "add-on"
    assert {"profile_rig/blender/package_render.py", "character_library/api.py", "bump_client/client.py",
            "bump_contracts/bump_job.py", "profile_rig/blender/package_cli.py"} <= inside
    # the Blender side's packages, nothing hand-picked: no backend, no batch runner, no add-on copy
    assert {n.split("/")[0] for n in inside if "/" in n and ".dist-info" not in n} == set(WHEEL_SOURCES)


def _our_status_draw() -> list:
    funcs = bpy.types.STATUSBAR_HT_header._dyn_ui_initialize()
    return [f for f in funcs if getattr(f, "__module__", "").startswith(MODULE)]


def test_enable_disable_twice_cleans_everything(installed):
    enable()
    kept = {k: getattr(_prefs(), k) for k in ("library_folder", "work_folder", "backend_url")}
    for _ in range(2):
        jobs = addon_module("jobs")
        assert hasattr(bpy.types.Scene, "bump_studio") and bpy.ops.bump_studio.render_bump.poll() is not None
        assert len(_our_status_draw()) == 1
        addon_utils.disable(MODULE, default_set=True)
        assert MODULE not in {a.module for a in bpy.context.preferences.addons}
        assert not hasattr(bpy.types.Scene, "bump_studio")
        assert not hasattr(bpy.types.WindowManager, "bump_studio_library")
        for name in ("BUMP_STUDIO_PT_package", "BUMP_STUDIO_PT_bump", "BUMP_STUDIO_PT_library",
                     "BUMP_STUDIO_OT_render_bump", "BUMP_STUDIO_UL_library"):
            assert not hasattr(bpy.types, name), name
        assert not _our_status_draw()
        assert not bpy.app.timers.is_registered(jobs.tick)
        assert not [h for h in bpy.app.handlers.load_pre if getattr(h, "__module__", "").startswith(MODULE)]
        enable()
    assert _prefs().backend_url == "http://127.0.0.1:7861"  # a fresh enable starts from the defaults
    for key, value in kept.items():  # the preferences other tests set
        setattr(_prefs(), key, value)


def _prefs():
    return bpy.context.preferences.addons[MODULE].preferences


def test_check_backend_reports_a_backend_that_is_down(installed):
    enable()
    prefs = bpy.context.preferences.addons[MODULE].preferences
    old = prefs.backend_url
    prefs.backend_url = "http://127.0.0.1:9"
    try:
        bpy.ops.bump_studio.check_backend()
    except RuntimeError as exc:
        assert "backend not running at http://127.0.0.1:9" in str(exc)
        assert "python -m bump_backend serve --port 9" in str(exc)
    else:
        raise AssertionError("check_backend did not report the missing backend")
    finally:
        prefs.backend_url = old

"""Add-on preferences: backend, library folder, and the defaults a new scene's settings start from."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import properties

ADDON_ID = __package__  # "bl_ext.<repo>.bump_studio" when installed, the package name otherwise


def default_library_folder() -> str:
    return os.environ.get("BUMP_STUDIO_LIBRARY") or str(Path.home() / "BumpStudio" / "library")


# The settings a scene copies from the preferences (name -> default); one list for both sides.
PACKAGE_DEFAULTS: dict[str, Any] = {
    "view_set": "default",
    "custom_views": "front,three_quarter_left,profile_right",
    "resolution": 720,
    "preset": "fast",
    "samples": 0,
    "engine": "CYCLES",
    "studio": "almost_white",
}
BUMP_DEFAULTS: dict[str, Any] = {
    "negative_prompt": properties.DEFAULT_NEGATIVE,
    "steps": 35,
    "cfg": 7.0,
    "denoise": 0.32,
    "sampler": "Restart",
    "seed": -1,
    "ip_adapter_scale": 0.6,
    "face_pass": True,
    "face_size": 720,
}


class BUMP_STUDIO_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_url: StringProperty(name="Backend URL", default="http://127.0.0.1:7861",
                                description="Where the bump backend listens (python -m bump_backend serve)")
    backend_token: StringProperty(name="Token", subtype="PASSWORD", default="",
                                  description="Bearer token, if the backend was started with --token")
    upload_package: EnumProperty(
        name="Send package", default="AUTO",
        items=[("AUTO", "Auto", "Send the package folder's path to a backend on this machine, upload it otherwise"),
               ("PATH", "As path", "The backend reads the package folder from this machine's disk"),
               ("UPLOAD", "Upload", "Upload the package images with every job (remote backend)")])
    library_folder: StringProperty(name="Library folder", subtype="DIR_PATH", default=default_library_folder(),
                                   description="The character library (created when missing)")
    work_folder: StringProperty(name="Work folder", subtype="DIR_PATH", default="",
                                description="Renders sent for a bump and their results (empty: a folder next to "
                                            "the library)")

    view_set: EnumProperty(name="Views", items=properties.VIEW_SET_ITEMS, default=PACKAGE_DEFAULTS["view_set"])
    custom_views: StringProperty(name="Custom views", default=PACKAGE_DEFAULTS["custom_views"])
    resolution: IntProperty(name="Resolution", min=64, max=4096, default=PACKAGE_DEFAULTS["resolution"])
    preset: EnumProperty(name="Preset", items=properties.PRESET_ITEMS, default=PACKAGE_DEFAULTS["preset"])
    samples: IntProperty(name="Samples", min=0, max=4096, default=0, description="0: the preset's samples")
    engine: EnumProperty(name="Engine", items=properties.ENGINE_ITEMS, default=PACKAGE_DEFAULTS["engine"])
    studio: EnumProperty(name="Studio", items=properties.STUDIO_ITEMS, default=PACKAGE_DEFAULTS["studio"])

    negative_prompt: StringProperty(name="Negative prompt", default=BUMP_DEFAULTS["negative_prompt"])
    steps: IntProperty(name="Steps", min=1, max=150, default=BUMP_DEFAULTS["steps"])
    cfg: FloatProperty(name="CFG", min=0.0, max=30.0, default=BUMP_DEFAULTS["cfg"])
    denoise: FloatProperty(name="Denoise", min=0.0, max=1.0, default=BUMP_DEFAULTS["denoise"])
    sampler: EnumProperty(name="Sampler", items=properties.SAMPLER_ITEMS, default=BUMP_DEFAULTS["sampler"])
    seed: IntProperty(name="Seed", min=-1, default=-1, description="-1: a random seed (recorded with the result)")
    ip_adapter_scale: FloatProperty(name="IP-Adapter scale", min=0.0, max=2.0, default=BUMP_DEFAULTS["ip_adapter_scale"])
    face_pass: BoolProperty(name="Face pass", default=True)
    face_size: IntProperty(name="Face size", min=64, max=1536, default=BUMP_DEFAULTS["face_size"])

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        box = layout.box()
        box.label(text="Backend", icon="URL")
        row = box.row()
        row.prop(self, "backend_url")
        row.operator("bump_studio.check_backend", icon="CHECKMARK")
        box.prop(self, "backend_token")
        box.prop(self, "upload_package")
        box = layout.box()
        box.label(text="Folders", icon="FILE_FOLDER")
        box.prop(self, "library_folder")
        box.prop(self, "work_folder")
        box = layout.box()
        box.label(text="Default package settings", icon="OUTLINER_OB_CAMERA")
        for name in PACKAGE_DEFAULTS:
            box.prop(self, name)
        box = layout.box()
        box.label(text="Default bump settings", icon="SHADERFX")
        for name in BUMP_DEFAULTS:
            box.prop(self, name)


def _fallback() -> SimpleNamespace:
    """The defaults, for code registered outside the preferences (a script calling register())."""
    return SimpleNamespace(backend_url="http://127.0.0.1:7861", backend_token="", upload_package="AUTO",
                           library_folder=default_library_folder(), work_folder="",
                           **PACKAGE_DEFAULTS, **BUMP_DEFAULTS)


def get_prefs(context: bpy.types.Context | None = None) -> Any:
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None and addon.preferences is not None else _fallback()


def work_folder(prefs: Any) -> Path:
    folder = bpy.path.abspath(prefs.work_folder) if prefs.work_folder else ""
    if folder:
        return Path(folder)
    return Path(bpy.path.abspath(prefs.library_folder)).expanduser().parent / "work"


def apply_defaults(settings: Any, prefs: Any) -> None:
    """Copy the preference defaults into a scene's settings (once per scene, or on request)."""
    for name in (*PACKAGE_DEFAULTS, *BUMP_DEFAULTS):
        setattr(settings, name, getattr(prefs, name))
    settings.initialized = True


classes = (BUMP_STUDIO_AP_preferences,)

"""Add-on preferences: backend, library folder, and the defaults a new scene's settings start from."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from bump_client.local_server import default_python
from bump_contracts import package_params
from character_library.locations import library_path

from . import param_props, properties

ADDON_ID = __package__  # "bl_ext.<repo>.bump_studio" when installed, the package name otherwise


BACKEND_DRAW: list = []  # backend_ui.draw_status (appended there: it imports this module)


def default_library_folder() -> str:
    return str(library_path())


# The settings a scene copies from the preferences (name -> default); one list for both sides.
PACKAGE_DEFAULTS: dict[str, Any] = {
    "view_set": package_params.DEFAULT_VIEW_SET,
    "custom_views": "front,three_quarter_left,profile_right",
    "resolution": package_params.RESOLUTION.default,
    "preset": package_params.DEFAULT_PRESET,
    "samples": 0,
    "engine": "CYCLES",
    "studio": package_params.DEFAULT_STUDIO,
}
BUMP_DEFAULTS: dict[str, Any] = {name: param_props.bump_default(name) for name in (
    "negative_prompt", "steps", "cfg", "denoise", "sampler", "seed", "ip_adapter_scale", "face_pass", "face_size", "clip_skip")}


class BUMP_STUDIO_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_url: StringProperty(name="Backend URL", default="http://127.0.0.1:7861",
                                description="Where the bump backend listens (python -m bump_backend serve)")
    backend_token: StringProperty(name="Token", subtype="PASSWORD", default="",
                                  description="Bearer token, if the backend was started with --token")
    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default=default_python(bpy.app.binary_path),
        description="The Python (or venv folder) with the backend installed, for Start; Blender's own Python "
                    "has no torch")
    backend_port: IntProperty(name="Port", min=1024, max=65535, default=7861,
                              description="The port Start serves on (127.0.0.1 only)")
    backend_args: StringProperty(name="Arguments", default="",
                                 description="More 'bump_backend serve' arguments, e.g. --model sdxl --device cuda")
    backend_keep_running: BoolProperty(
        name="Keep running", default=False,
        description="Leave the backend running when Blender quits or the add-on is disabled (the next session "
                    "finds it again)")
    upload_package: EnumProperty(
        name="Send package and frames", default="AUTO",
        items=[("AUTO", "Auto", "Send the package's (and a frame range's) folder path to a backend on this machine, "
                                "upload them otherwise"),
               ("PATH", "As path", "The backend reads the package and the rendered frames from this machine's disk"),
               ("UPLOAD", "Upload", "Upload the package images (and a frame range's frames, as one ZIP) with every "
                                    "job (remote backend)")])
    library_folder: StringProperty(name="Library folder", subtype="DIR_PATH", default=default_library_folder(),
                                   description="The character library (created when missing)")
    work_folder: StringProperty(name="Work folder", subtype="DIR_PATH", default="",
                                description="Renders sent for a bump and their results (empty: a folder next to "
                                            "the library)")

    view_set: EnumProperty(name="Views", items=properties.VIEW_SET_ITEMS, default=PACKAGE_DEFAULTS["view_set"])
    custom_views: StringProperty(name="Custom views", default=PACKAGE_DEFAULTS["custom_views"])
    resolution: param_props.package_int(package_params.RESOLUTION, "Resolution")
    preset: EnumProperty(name="Preset", items=properties.PRESET_ITEMS, default=PACKAGE_DEFAULTS["preset"])
    samples: IntProperty(name="Samples", min=0, max=int(package_params.SAMPLES.high), default=0,
                         description="0: the preset's samples")
    engine: EnumProperty(name="Engine", items=properties.ENGINE_ITEMS, default=PACKAGE_DEFAULTS["engine"])
    studio: EnumProperty(name="Studio", items=properties.STUDIO_ITEMS, default=PACKAGE_DEFAULTS["studio"])

    negative_prompt: StringProperty(name="Negative prompt", default=BUMP_DEFAULTS["negative_prompt"])
    steps: param_props.bump_int("steps", "Steps")
    cfg: param_props.bump_float("cfg", "CFG")
    denoise: param_props.bump_float("denoise", "Denoise")
    sampler: EnumProperty(name="Sampler", items=param_props.SAMPLER_ITEMS, default=BUMP_DEFAULTS["sampler"])
    seed: param_props.bump_int("seed", "Seed", description="-1: a random seed (recorded with the result)")
    ip_adapter_scale: param_props.bump_float("ip_adapter_scale", "IP-Adapter scale")
    face_pass: BoolProperty(name="Face pass", default=BUMP_DEFAULTS["face_pass"])
    face_size: param_props.bump_int("face_size", "Face size")
    clip_skip: param_props.bump_int("clip_skip", "Clip skip", description="CLIP layers counted from the end "
                                    "(A1111's Clip skip; 2 for many anime checkpoints)")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        box = layout.box()
        box.label(text="Backend on this machine", icon="CONSOLE")
        box.prop(self, "backend_python")
        row = box.row()
        row.prop(self, "backend_port")
        row.prop(self, "backend_keep_running")
        box.prop(self, "backend_args")
        for draw in BACKEND_DRAW:
            draw(box, self, full=True)
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
                           backend_python=default_python(bpy.app.binary_path), backend_port=7861, backend_args="",
                           backend_keep_running=False,
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


def apply_defaults(settings: Any, prefs: Any, *, keep_set: bool = False) -> None:
    """Copy the preference defaults into a scene's settings.

    ``keep_set``: only into the settings nobody set yet (a script or the panel may have set some
    before the scene was first initialised; those are what the user asked for and stay).
    """
    for name in (*PACKAGE_DEFAULTS, *BUMP_DEFAULTS):
        if keep_set and settings.is_property_set(name):
            continue
        setattr(settings, name, getattr(prefs, name))
    settings.initialized = True


def initialise_scenes(prefs: Any | None = None) -> int:
    """Give every scene whose settings were never initialised the preferences' defaults (unset values only).

    Runs when the add-on is enabled, after a file loads and when a panel first draws a new scene
    (as a timer: a panel may not write while drawing), so an operator never has to change settings
    the user is looking at. Returns how many scenes it initialised.
    """
    prefs = prefs if prefs is not None else get_prefs()
    done = 0
    for scene in bpy.data.scenes:
        settings = getattr(scene, "bump_studio", None)
        if settings is not None and not settings.initialized:
            apply_defaults(settings, prefs, keep_set=True)
            done += 1
    return done


def ensure_initialised(settings: Any, prefs: Any) -> None:
    """For operators: a scene nobody initialised gets the defaults where nothing was set (never over a value)."""
    if not settings.initialized:
        apply_defaults(settings, prefs, keep_set=True)


def _initialise_timer() -> None:
    initialise_scenes()
    return None


def schedule_initialise() -> None:
    """Initialise new scenes soon, from a timer (called by panels, which may not write while drawing)."""
    if not bpy.app.timers.is_registered(_initialise_timer):
        bpy.app.timers.register(_initialise_timer, first_interval=0.0)


def cancel_initialise() -> None:
    if bpy.app.timers.is_registered(_initialise_timer):
        bpy.app.timers.unregister(_initialise_timer)


classes = (BUMP_STUDIO_AP_preferences,)

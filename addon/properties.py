"""Scene settings (``scene.bump_studio``) and the window manager's runtime lists (library, history).

Scene settings are saved with the .blend (the character, its head overrides, package and bump
settings, the last job); the library lists are rebuilt from the library folder and never saved.
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from bump_contracts import package_params
from bump_contracts.clip import MAX_FRAMES
from bump_contracts.pose import POSE_VIEWS_DEFAULT
from bump_contracts.views import VIEW_SETS
from profile_rig.core.expressions import EXPRESSIONS
from profile_rig.core.render_presets import PRESETS
from profile_rig.core.studio_hdri import STUDIOS

from .param_props import (
    SAMPLER_ITEMS,
    bump_default,
    bump_float,
    bump_int,
    expression_strength,
    package_int,
    pose_angle,
    snap_to_rule,
)

# Custom property that links a scene object to a library character (value: the character id).
CHARACTER_LINK = "bump_studio_character"


VIEW_SET_ITEMS = [(name, name.capitalize(), ", ".join(views)) for name, views in VIEW_SETS.items()] + [
    ("custom", "Custom", "The views listed in 'Custom views' (names or name:yaw:pitch:roll)")]
PRESET_ITEMS = [(name, name.replace("_", " ").capitalize(), f"{p.engine}, {p.samples} samples")
                for name, p in PRESETS.items()]
ENGINE_ITEMS = [("CYCLES", "Cycles", "Path tracing (CPU or GPU)"),
                ("BLENDER_EEVEE", "EEVEE", "Rasterised; needs a GPU or EGL"),
                ("BLENDER_WORKBENCH", "Workbench", "Solid shading, for quick checks")]
EXPRESSION_ITEMS = [(name, name.replace("_", " ").capitalize(), f"The demo's '{name}' expression, or the "
                    f"character's shape key named '{name}'") for name in EXPRESSIONS]
STUDIO_ITEMS = [(name, name.replace("_", " ").capitalize(), s.description) for name, s in STUDIOS.items()]


def _is_character(_self, obj: bpy.types.Object) -> bool:
    return obj.type in {"ARMATURE", "MESH"}


def _face_size_changed(self, _context: bpy.types.Context) -> None:
    snap_to_rule(self, "face_size")


def _factor_changed(self, context: bpy.types.Context) -> None:
    from . import compositor

    compositor.set_factor(self.id_data, self.mix_factor)


class BumpStudioSettings(bpy.types.PropertyGroup):
    """Everything the panels edit for one scene."""

    initialized: BoolProperty(default=False, options={"HIDDEN"})

    # character and head
    character: PointerProperty(name="Character", type=bpy.types.Object, poll=_is_character,
                               description="The character's armature or mesh (empty: the active or selected "
                                           "character, else the most likely figure)")
    head_bone: StringProperty(name="Head bone", description="Override: the bone to treat as the head")
    eye_bone_left: StringProperty(name="Left eye", description="Override: the subject's left eye bone")
    eye_bone_right: StringProperty(name="Right eye", description="Override: the subject's right eye bone")
    head_object: PointerProperty(name="Head object", type=bpy.types.Object,
                                 description="Override: an empty at the head centre (-Y forward, +Z up)")
    detected: StringProperty(name="Detected head", default="")
    library_character: StringProperty(name="Library character",
                                      description="The library character whose package is the identity reference")

    # package
    view_set: EnumProperty(name="Views", items=VIEW_SET_ITEMS, default="default")
    custom_views: StringProperty(name="Custom views", default="front,three_quarter_left,profile_right")
    resolution: package_int(package_params.RESOLUTION, "Resolution")
    preset: EnumProperty(name="Preset", items=PRESET_ITEMS, default="fast")
    samples: IntProperty(name="Samples", min=0, max=int(package_params.SAMPLES.high), default=0,
                         description="0: the preset's samples")
    engine: EnumProperty(name="Engine", items=ENGINE_ITEMS, default="CYCLES")
    studio: EnumProperty(name="Studio", items=STUDIO_ITEMS, default="almost_white")
    save_to_library: BoolProperty(name="Save to library", default=True,
                                  description="Add the package to the character library as a new version")
    output_dir: StringProperty(name="Folder", subtype="DIR_PATH", default="",
                               description="Where the package goes when it is not saved to the library")
    pose_views: BoolProperty(name="Pose views", default=POSE_VIEWS_DEFAULT,
                             description="Over-shoulder and up/down views turn the body and bend the neck of a "
                                         "rigged character (off: only the camera moves)")
    expression_views: StringProperty(name="Expression views", default="",
                                     description="Extra front and three-quarter views per expression, e.g. "
                                                 "neutral,smile (empty: none)")
    package_running: BoolProperty(default=False, options={"SKIP_SAVE"})
    package_progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})
    package_message: StringProperty(default="")
    last_package: StringProperty(name="Last package", subtype="DIR_PATH", default="")

    # the current shot's pose (Apply Pose / Reset Pose on the character's rig)
    pose_head_turn: pose_angle("head", 0)
    pose_head_tilt: pose_angle("head", 1)
    pose_head_roll: pose_angle("head", 2)
    pose_neck_turn: pose_angle("neck", 0)
    pose_neck_tilt: pose_angle("neck", 1)
    pose_neck_roll: pose_angle("neck", 2)
    pose_eyes_turn: pose_angle("eyes", 0)
    pose_eyes_tilt: pose_angle("eyes", 1)
    pose_expression: EnumProperty(name="Expression", items=EXPRESSION_ITEMS, default="neutral")
    pose_expression_weight: expression_strength("Strength")

    # bump
    prompt: StringProperty(name="Prompt", default="", description="Empty: the library character's prompt")
    negative_prompt: StringProperty(name="Negative prompt", default=bump_default("negative_prompt"))
    steps: bump_int("steps", "Steps")
    cfg: bump_float("cfg", "CFG")
    denoise: bump_float("denoise", "Denoise")
    sampler: EnumProperty(name="Sampler", items=SAMPLER_ITEMS, default=bump_default("sampler"))
    seed: bump_int("seed", "Seed", description="-1: random (the seed used is recorded)")
    ip_adapter_scale: bump_float("ip_adapter_scale", "IP-Adapter scale")
    face_pass: BoolProperty(name="Face pass", default=bump_default("face_pass"),
                            description="Bump each face on its own first (FacePop)")
    face_size: bump_int("face_size", "Face size", update=_face_size_changed,
                        description="Each face is bumped at this size (px, a multiple of 8) before it is pasted back")
    clip_skip: bump_int("clip_skip", "Clip skip", description="CLIP layers counted from the end (A1111's Clip "
                        "skip: 1 is the last layer; 2 for many anime checkpoints)")
    bump_engine: EnumProperty(
        name="Render with", default="SCENE",
        items=[("SCENE", "Scene's engine", "Final quality: the scene's own engine and settings"),
               ("BLENDER_EEVEE", "EEVEE (quick)", "Viewport quality in seconds, to try settings before a final render"),
               ("BLENDER_WORKBENCH", "Workbench (quick)", "Solid shading with material colours: fastest")],
        description="The engine Render & Bump renders the shot with (the scene's engine is put back afterwards)")
    use_last_render: BoolProperty(name="Use last render", default=False,
                                  description="Send the last render instead of rendering the camera again")
    frames: EnumProperty(
        name="Frames", default="CURRENT",
        items=[("CURRENT", "Current frame", "Render and bump the current frame"),
               ("SCENE", "Scene range", "Every frame from the scene's Frame Start to End, bumped as one sequence"),
               ("CUSTOM", "Frame range", "Every frame from Start to End, bumped as one sequence")],
        description=f"One frame, or a range (at most {MAX_FRAMES} frames) rendered with motion vectors and bumped "
                    "as one sequence: one identity, no flicker")
    range_start: IntProperty(name="Start", default=1, description="First frame of the range")
    range_end: IntProperty(name="End", default=24,
                           description=f"Last frame of the range (included; at most {MAX_FRAMES} frames in all)")

    # the last bump job (state lives in jobs.py; these are what the panel shows)
    job_id: StringProperty(default="")
    job_state: StringProperty(default="", options={"SKIP_SAVE"})
    job_stage: StringProperty(default="", options={"SKIP_SAVE"})
    job_progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})
    job_message: StringProperty(default="")
    result_folder: StringProperty(name="Result", subtype="DIR_PATH", default="")
    mix_factor: FloatProperty(name="Bump amount", min=0.0, max=1.0, default=1.0, subtype="FACTOR",
                              update=_factor_changed, description="How much of the bumped image shows through the mask")


class BumpStudioLibraryItem(bpy.types.PropertyGroup):
    character_id: StringProperty()
    active_version: IntProperty(default=0)
    thumbnail: StringProperty(subtype="FILE_PATH")


class BumpStudioVersionItem(bpy.types.PropertyGroup):
    version: IntProperty()
    origin: StringProperty()
    views: IntProperty()
    active: BoolProperty()
    created: StringProperty()


class BumpStudioHistoryItem(bpy.types.PropertyGroup):
    run_id: StringProperty()
    created: StringProperty()
    seed: IntProperty()
    identity_score: FloatProperty(default=-1.0, description="-1: not scored")
    package_version: IntProperty()
    output: StringProperty(subtype="FILE_PATH")


def _library_selected(self, context: bpy.types.Context) -> None:
    from . import operators_library

    operators_library.load_details(context)


classes = (BumpStudioSettings, BumpStudioLibraryItem, BumpStudioVersionItem, BumpStudioHistoryItem)


def register_properties() -> None:
    bpy.types.Scene.bump_studio = PointerProperty(type=BumpStudioSettings)
    wm = bpy.types.WindowManager
    wm.bump_studio_library = CollectionProperty(type=BumpStudioLibraryItem)
    wm.bump_studio_library_index = IntProperty(default=-1, update=_library_selected)
    wm.bump_studio_versions = CollectionProperty(type=BumpStudioVersionItem)
    wm.bump_studio_history = CollectionProperty(type=BumpStudioHistoryItem)
    wm.bump_studio_filter = StringProperty(name="Filter", default="", options={"TEXTEDIT_UPDATE"})


def unregister_properties() -> None:
    del bpy.types.Scene.bump_studio
    wm = bpy.types.WindowManager
    for name in ("bump_studio_library", "bump_studio_library_index", "bump_studio_versions", "bump_studio_history",
                 "bump_studio_filter"):
        delattr(wm, name)

"""Sidebar panels (View3D > Bump Studio), the library list, the status-bar progress and small UI helpers.

Panels only draw: they read scene settings and the window manager's lists, never the library
or the network (operators fill those lists).
"""

from __future__ import annotations

import contextlib
from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

from bump_client.capabilities import IGNORED, unavailable
from bump_contracts.clip import MAX_FRAMES

from . import backend_ui, frame_range, jobs, preferences

CATEGORY = "Bump Studio"
RUNNING_STATES = ("starting", "queued", "running")


# -- helpers the operators use ---------------------------------------------------------------
def tag_redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "STATUSBAR", "IMAGE_EDITOR", "NODE_EDITOR"}:
                area.tag_redraw()


def redraw_now() -> None:
    """Repaint during a blocking render so the progress shows (Blender's documented redraw hack)."""
    if bpy.app.background:
        return
    tag_redraw()
    with contextlib.suppress(RuntimeError):
        bpy.ops.wm.redraw_timer(type="DRAW_WIN_SWAP", iterations=1)


def show_image(image: bpy.types.Image) -> bool:
    """Show an image in an Image Editor: an open one, else a new window with one. False without a UI."""
    if bpy.app.background:
        return False
    wm = bpy.context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                area.tag_redraw()
                return True
    if not wm.windows:
        return False
    with bpy.context.temp_override(window=wm.windows[0]):
        bpy.ops.wm.window_new()
    area = wm.windows[-1].screen.areas[0]
    area.type = "IMAGE_EDITOR"
    area.spaces.active.image = image
    return True


def notify(level: str, message: str) -> None:
    """A report in the status bar and the Info log from outside an operator (a timer)."""
    if bpy.app.background:
        print(message)
        return
    try:
        bpy.ops.bump_studio.notify(level=level, message=message)
    except RuntimeError:
        print(message)


class BUMP_STUDIO_OT_notify(bpy.types.Operator):
    """Report a message (used by job callbacks that run outside an operator)"""

    bl_idname = "bump_studio.notify"
    bl_label = "Bump Studio Message"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[(k, k, "") for k in ("INFO", "WARNING", "ERROR")], default="INFO")
    message: StringProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


# -- panels ------------------------------------------------------------------------------------
class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY


class BUMP_STUDIO_PT_package(_Sidebar, bpy.types.Panel):
    bl_label = "Profile Package"
    bl_idname = "BUMP_STUDIO_PT_package"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.bump_studio
        if not s.initialized:
            preferences.schedule_initialise()  # a new scene: the preferences' defaults, where nothing was set
        row = layout.row(align=True)
        row.prop(s, "character")
        row.operator("bump_studio.add_demo_character", text="", icon="OUTLINER_OB_ARMATURE")
        row = layout.row(align=True)
        row.operator("bump_studio.detect_head", icon="VIEWZOOM")
        if s.detected:
            layout.label(text=s.detected, icon="CHECKMARK")
        col = layout.column(align=True)
        col.prop(s, "view_set")
        if s.view_set == "custom":
            col.prop(s, "custom_views", text="")
        col.prop(s, "resolution")
        col.prop(s, "preset")
        col.prop(s, "samples")
        col.prop(s, "engine")
        col.prop(s, "studio")
        col.prop(s, "pose_views")
        col.prop(s, "expression_views")
        col.operator("bump_studio.reset_settings", icon="LOOP_BACK")
        layout.prop(s, "save_to_library")
        if not s.save_to_library:
            layout.prop(s, "output_dir")
        if s.package_running:
            layout.progress(factor=s.package_progress, type="BAR", text=s.package_message)
            layout.operator("bump_studio.cancel_package", icon="CANCEL")
        else:
            layout.operator("bump_studio.render_package", icon="RENDER_STILL")
            if s.package_message:
                layout.label(text=s.package_message)


class BUMP_STUDIO_PT_head_override(_Sidebar, bpy.types.Panel):
    bl_label = "Head Override"
    bl_parent_id = "BUMP_STUDIO_PT_package"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.bump_studio
        layout = self.layout
        rig = s.character if s.character is not None and s.character.type == "ARMATURE" else None
        for name in ("head_bone", "eye_bone_left", "eye_bone_right"):
            if rig is not None:
                layout.prop_search(s, name, rig.data, "bones")
            else:
                layout.prop(s, name)
        layout.prop(s, "head_object")


class BUMP_STUDIO_PT_pose(_Sidebar, bpy.types.Panel):
    """The current shot's pose: head, neck and eye angles and an expression on the character's rig."""

    bl_label = "Pose"
    bl_parent_id = "BUMP_STUDIO_PT_package"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.bump_studio
        layout = self.layout
        for control, axes in (("head", ("turn", "tilt", "roll")), ("neck", ("turn", "tilt", "roll")),
                              ("eyes", ("turn", "tilt"))):
            col = layout.column(align=True)
            for axis in axes:
                col.prop(s, f"pose_{control}_{axis}")
        col = layout.column(align=True)
        col.prop(s, "pose_expression")
        row = col.row()
        row.enabled = s.pose_expression != "neutral"
        row.prop(s, "pose_expression_weight", slider=True)
        row = layout.row(align=True)
        row.operator("bump_studio.apply_pose", icon="ARMATURE_DATA")
        row.operator("bump_studio.reset_pose", icon="LOOP_BACK")


class BUMP_STUDIO_PT_bump(_Sidebar, bpy.types.Panel):
    bl_label = "Render & Bump"
    bl_idname = "BUMP_STUDIO_PT_bump"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.bump_studio
        backend_ui.draw_status(layout.box(), preferences.get_prefs(context))
        layout.prop(s, "library_character", icon="USER")
        layout.prop(s, "prompt")
        layout.prop(s, "negative_prompt")
        col = layout.column(align=True)
        names = ("steps", "cfg", "denoise", "sampler", "seed", "ip_adapter_scale", "face_pass", "face_size",
                 "clip_skip")
        # what the running backend says it cannot do: greyed (no effect) or marked (it would refuse)
        missing = unavailable(backend_ui.capabilities(), {name: getattr(s, name) for name in names})
        for name in names:
            row = col.row(align=True)
            row.enabled = name not in missing or name not in IGNORED
            row.alert = name in missing and name not in IGNORED
            row.prop(s, name)
        for why in missing.values():
            for line in _wrap(why, 48):
                layout.label(text=line, icon="INFO")
        _draw_frames(layout, context.scene)
        row = layout.row()
        row.enabled = s.frames == "CURRENT"
        row.prop(s, "use_last_render")
        row = layout.row()
        row.enabled = not s.use_last_render or s.frames != "CURRENT"
        row.prop(s, "bump_engine")
        running = jobs.MANAGER.busy(context.scene.name)
        if running:
            layout.progress(factor=s.job_progress, type="BAR", text=s.job_stage or s.job_state)
            layout.operator("bump_studio.cancel_bump", icon="CANCEL")
        else:
            layout.operator("bump_studio.render_bump", icon="SHADERFX")
            if s.job_message:
                box = layout.box()
                for line in _wrap(s.job_message, 48):
                    box.label(text=line)
        if bpy.data.images.get("BumpStudio Bump") is not None:
            layout.prop(s, "mix_factor", slider=True)
            row = layout.row(align=True)
            row.operator("bump_studio.show_result", icon="IMAGE_DATA")
            row.operator("bump_studio.clear_result", icon="X", text="Remove")
            if context.scene.view_settings.view_transform != "Standard":
                layout.label(text="Compositor output goes through the view transform", icon="INFO")


def _draw_frames(layout: bpy.types.UILayout, scene: bpy.types.Scene) -> None:
    """Frames: the current one, the scene's range or a typed one; the count and the limit, or why it is refused."""
    s = scene.bump_studio
    layout.prop(s, "frames")
    if s.frames == "CURRENT":
        return
    if s.frames == "CUSTOM":
        row = layout.row(align=True)
        row.prop(s, "range_start")
        row.prop(s, "range_end")
    try:
        frames = frame_range.frames_of(scene)
    except frame_range.RangeError as exc:
        box = layout.box()
        box.alert = True
        for line in _wrap(str(exc), 48):
            box.label(text=line, icon="ERROR")
        return
    layout.label(text=f"{len(frames)} frames, {frames[0]}-{frames[-1]} (at most {MAX_FRAMES}), one sequence",
                 icon="SEQUENCE")


class BUMP_STUDIO_UL_library(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0) -> None:
        from .operators_library import thumbnail_icon

        icon_id = thumbnail_icon(item)
        version = f"v{item.active_version}" if item.active_version else "no package"
        if icon_id:
            layout.label(text=f"{item.name}  ({version})", icon_value=icon_id)
        else:
            layout.label(text=f"{item.name}  ({version})", icon="USER")


class BUMP_STUDIO_PT_library(_Sidebar, bpy.types.Panel):
    bl_label = "Character Library"
    bl_idname = "BUMP_STUDIO_PT_library"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        wm = context.window_manager
        row = layout.row(align=True)
        row.prop(wm, "bump_studio_filter", text="", icon="VIEWZOOM")
        row.operator("bump_studio.library_refresh", text="", icon="FILE_REFRESH")
        row = layout.row()
        row.template_list("BUMP_STUDIO_UL_library", "", wm, "bump_studio_library", wm, "bump_studio_library_index",
                          rows=4)
        col = row.column(align=True)
        col.operator("bump_studio.library_create", text="", icon="ADD")
        col.operator("bump_studio.library_edit", text="", icon="GREASEPENCIL")
        col.operator("bump_studio.library_delete", text="", icon="TRASH")
        col.operator("bump_studio.library_open_folder", text="", icon="FILE_FOLDER")
        layout.operator("bump_studio.library_use", icon="USER")


class BUMP_STUDIO_PT_library_versions(_Sidebar, bpy.types.Panel):
    bl_label = "Package Versions"
    bl_parent_id = "BUMP_STUDIO_PT_library"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        versions = context.window_manager.bump_studio_versions
        if not versions:
            layout.label(text="No package yet: Render Package adds one")
        for item in versions:
            row = layout.row()
            row.label(text=f"{item.name}  {item.origin}, {item.views} views", icon="CHECKMARK" if item.active else "BLANK1")
            if not item.active:
                op = row.operator("bump_studio.library_set_active", text="Use")
                op.version = item.version


class BUMP_STUDIO_PT_library_history(_Sidebar, bpy.types.Panel):
    bl_label = "Generation History"
    bl_parent_id = "BUMP_STUDIO_PT_library"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        history = context.window_manager.bump_studio_history
        if not history:
            layout.label(text="No bumps recorded yet")
        for item in history:
            score = f"{item.identity_score:.3f}" if item.identity_score >= 0 else "-"
            layout.label(text=f"{item.created[:16]}  seed {item.seed}  v{item.package_version}  identity {score}")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def draw_status(self: Any, context: bpy.types.Context) -> None:
    """Status bar: a progress bar while this scene's bump runs."""
    scene = context.scene
    if scene is None or not jobs.MANAGER.busy(scene.name):
        return
    s = scene.bump_studio
    self.layout.progress(factor=s.job_progress, type="BAR", text=f"Bump: {s.job_stage or s.job_state}")


classes = (BUMP_STUDIO_OT_notify, BUMP_STUDIO_PT_package, BUMP_STUDIO_PT_head_override, BUMP_STUDIO_PT_pose,
           BUMP_STUDIO_PT_bump,
           BUMP_STUDIO_UL_library, BUMP_STUDIO_PT_library, BUMP_STUDIO_PT_library_versions,
           BUMP_STUDIO_PT_library_history)


def register_ui() -> None:
    bpy.types.STATUSBAR_HT_header.append(draw_status)


def unregister_ui() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status)

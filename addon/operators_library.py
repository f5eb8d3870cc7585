"""Library panel operators over ``character_library.Library``: list, create, edit, delete, versions, history.

The panel never reads the library while drawing: these operators copy what it shows into the
window manager's collections (and thumbnails into a preview collection) when something changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from character_library import Library, LibraryError
from profile_rig.blender.head_finder import HeadNotFoundError, find_head

from .preferences import get_prefs
from .properties import CHARACTER_LINK

_OPEN: dict[str, Any] = {}  # folder -> Library (sqlite connections belong to the main thread)
_PREVIEWS: dict[str, Any] = {}


class LibraryUnavailable(RuntimeError):
    """The library folder is not set or cannot be opened."""


def open_library(prefs: Any = None) -> Any:
    prefs = prefs or get_prefs()
    folder = bpy.path.abspath(prefs.library_folder or "").strip()
    if not folder:
        raise LibraryUnavailable("no library folder: set one in the add-on's preferences")
    key = str(Path(folder).expanduser().resolve())
    if key not in _OPEN:
        try:
            _OPEN[key] = Library.open(key)
        except (LibraryError, OSError) as exc:
            raise LibraryUnavailable(f"cannot open the library at {key}: {exc}; pick another folder in the "
                                     "add-on's preferences") from None
    return _OPEN[key]


def close_all() -> None:
    for lib in _OPEN.values():
        lib.close()
    _OPEN.clear()
    previews = _PREVIEWS.pop("thumbnails", None)
    if previews is not None:
        bpy.utils.previews.remove(previews)


def previews() -> Any:
    if "thumbnails" not in _PREVIEWS:
        import bpy.utils.previews

        _PREVIEWS["thumbnails"] = bpy.utils.previews.new()
    return _PREVIEWS["thumbnails"]


def thumbnail_preview(item: Any) -> Any:
    """The library item's thumbnail as a preview (loaded once per character version); None without one."""
    if not item.thumbnail or not Path(item.thumbnail).is_file():
        return None
    collection = previews()
    key = f"{item.character_id}:{item.active_version}"
    if key not in collection:
        collection.load(key, item.thumbnail, "IMAGE")
    return collection[key]


def thumbnail_icon(item: Any) -> int:
    """The icon id for the list (0: none; always 0 in background mode, where Blender makes no icons)."""
    preview = thumbnail_preview(item)
    return preview.icon_id if preview is not None else 0


def selected_character(context: bpy.types.Context) -> str | None:
    wm = context.window_manager
    index = wm.bump_studio_library_index
    return wm.bump_studio_library[index].character_id if 0 <= index < len(wm.bump_studio_library) else None


def refresh(context: bpy.types.Context) -> int:
    lib = open_library(get_prefs(context))
    wm = context.window_manager
    keep = selected_character(context)
    wm.bump_studio_library.clear()
    for character in lib.list_characters(wm.bump_studio_filter or None):
        item = wm.bump_studio_library.add()
        item.name, item.character_id = character.name, character.id
        item.active_version = character.active_version or 0
        thumb = lib.characters_dir / character.folder / "thumbnail.png"
        item.thumbnail = str(thumb) if thumb.is_file() else ""
    ids = [i.character_id for i in wm.bump_studio_library]
    wm.bump_studio_library_index = ids.index(keep) if keep in ids else (0 if ids else -1)
    load_details(context)
    return len(ids)


def load_details(context: bpy.types.Context) -> None:
    """Versions and history of the selected character into the window manager's lists."""
    wm = context.window_manager
    wm.bump_studio_versions.clear()
    wm.bump_studio_history.clear()
    char_id = selected_character(context)
    if char_id is None:
        return

    try:
        lib = open_library(get_prefs(context))
        packages = lib.list_packages(char_id)
        runs = lib.list_runs(char_id, limit=20)
    except (LibraryError, LibraryUnavailable):
        return
    for package in packages:
        item = wm.bump_studio_versions.add()
        item.name = f"v{package.version}"
        item.version, item.origin, item.views = package.version, package.origin, len(package.views)
        item.active, item.created = package.active, package.created
    for run in runs:
        item = wm.bump_studio_history.add()
        item.name, item.run_id, item.created = run.run_id, run.run_id, run.created
        item.seed = run.seed if run.seed is not None and run.seed < 2**31 else -1
        item.identity_score = run.identity_score if run.identity_score is not None else -1.0
        item.package_version = run.package_version or 0
        item.output = run.outputs[0] if run.outputs else ""


def _report_library_error(op: bpy.types.Operator, exc: Exception) -> set[str]:
    op.report({"ERROR"}, str(exc))
    return {"CANCELLED"}


def _character_fields(op: Any) -> dict[str, Any]:
    return {"age": op.age if op.age > 0 else None, "gender": op.gender, "ethnicity": op.ethnicity,
            "features": op.features, "prompt": op.prompt, "negative_prompt": op.negative_prompt, "notes": op.notes}


def source_of(obj: bpy.types.Object) -> dict[str, Any]:
    if bpy.data.filepath:
        return {"kind": "blend", "blend": bpy.data.filepath, "object": obj.name}
    return {"kind": "external", "object": obj.name}


def bones_of(context: bpy.types.Context, obj: bpy.types.Object) -> dict[str, str]:
    """The head/eye bones the head finder uses for this object (recorded so later shots find the same)."""

    settings = context.scene.bump_studio
    eyes = (settings.eye_bone_left, settings.eye_bone_right) if settings.eye_bone_left and settings.eye_bone_right else None
    try:
        found = find_head(context.scene, obj.name, head_bone=settings.head_bone or None, eye_bones=eyes)
    except HeadNotFoundError:
        return {}
    bones = {}
    if found.details.get("head_bone"):
        bones["head"] = found.details["head_bone"]
    if found.details.get("eye_bones"):
        bones["eye_left"], bones["eye_right"] = found.details["eye_bones"]
    return bones


class _CharacterProps:
    name: StringProperty(name="Name")
    age: IntProperty(name="Age", min=0, max=150, default=0, description="0: not set")
    gender: StringProperty(name="Gender", description="As the prompt says it: man, woman...")
    ethnicity: StringProperty(name="Ethnicity", description="As the prompt says it: Spanish, Japanese...")
    features: StringProperty(name="Features", description="goatee, freckles...")
    prompt: StringProperty(name="Prompt", description="Empty: built from age, ethnicity, gender and features")
    negative_prompt: StringProperty(name="Negative prompt")
    notes: StringProperty(name="Notes")

    def draw(self, context: bpy.types.Context) -> None:
        for name in ("name", "age", "gender", "ethnicity", "features", "prompt", "negative_prompt", "notes"):
            self.layout.prop(self, name)


class BUMP_STUDIO_OT_library_refresh(bpy.types.Operator):
    """Reload the character list from the library folder"""

    bl_idname = "bump_studio.library_refresh"
    bl_label = "Refresh Library"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            count = refresh(context)
        except (LibraryError, LibraryUnavailable) as exc:
            return _report_library_error(self, exc)
        self.report({"INFO"}, f"{count} character(s) in the library")
        return {"FINISHED"}


class BUMP_STUDIO_OT_library_create(_CharacterProps, bpy.types.Operator):
    """Create a library character from the selected armature (or mesh) and link the object to it"""

    bl_idname = "bump_studio.library_create"
    bl_label = "New Character"
    bl_options = {"REGISTER"}  # the library on disk is not part of Blender's undo

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        obj = context.active_object
        if not self.name and obj is not None:
            self.name = obj.name
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = context.active_object or context.scene.bump_studio.character
        name = self.name or (obj.name if obj is not None else "")
        if not name:
            self.report({"ERROR"}, "give the character a name (or select its armature)")
            return {"CANCELLED"}
        fields = _character_fields(self)
        if obj is not None and obj.type in {"ARMATURE", "MESH"}:
            fields["source"], fields["bones"] = source_of(obj), bones_of(context, obj)
        try:
            character = open_library(get_prefs(context)).create_character(name, **fields)
            if obj is not None and obj.type in {"ARMATURE", "MESH"}:
                obj[CHARACTER_LINK] = character.id
            context.scene.bump_studio.library_character = character.id
            refresh(context)
        except (LibraryError, LibraryUnavailable) as exc:
            return _report_library_error(self, exc)
        linked = f", linked to {obj.name}" if obj is not None and obj.get(CHARACTER_LINK) == character.id else ""
        self.report({"INFO"}, f"created {character.name} ({character.id}){linked}")
        return {"FINISHED"}


class BUMP_STUDIO_OT_library_edit(_CharacterProps, bpy.types.Operator):
    """Edit the library character's name, phenotype, prompts and notes"""

    bl_idname = "bump_studio.library_edit"
    bl_label = "Edit Character"
    bl_options = {"REGISTER"}

    character: StringProperty(name="Character", description="Id or name (default: the selected one)")

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        ref = self.character or selected_character(context)
        try:
            c = open_library(get_prefs(context)).get_character(ref or "")
        except (LibraryError, LibraryUnavailable) as exc:
            return _report_library_error(self, exc)
        self.character, self.name, self.age = c.id, c.name, c.age or 0
        self.gender, self.ethnicity, self.features = c.gender, c.ethnicity, c.features
        self.prompt, self.negative_prompt, self.notes = c.prompt, c.negative_prompt, c.notes
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[str]:
        ref = self.character or selected_character(context)
        fields = {k: v for k, v in _character_fields(self).items() if self.properties.is_property_set(k)}
        if self.name:
            fields["name"] = self.name
        try:
            lib = open_library(get_prefs(context))
            character = lib.update_character(ref or "", **fields)
            refresh(context)
        except (LibraryError, LibraryUnavailable) as exc:
            return _report_library_error(self, exc)
        self.report({"INFO"}, f"saved {character.name}")
        return {"FINISHED"}


class BUMP_STUDIO_OT_library_delete(bpy.types.Operator):
    """Move the character and all its packages to the library's trash"""

    bl_idname = "bump_studio.library_delete"
    bl_label = "Delete Character"

    character: StringProperty(name="Character", description="Id or name (default: the selected one)")

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        ref = self.character or selected_character(context) or "?"
        return context.window_manager.invoke_confirm(self, event, title="Delete Character",
                                                     message=f"Move {ref} and its packages to the trash?",
                                                     confirm_text="Delete")

    def execute(self, context: bpy.types.Context) -> set[str]:
        ref = self.character or selected_character(context)
        try:
            lib = open_library(get_prefs(context))
            character = lib.get_character(ref or "")
            trash = lib.delete_character(character.id)
        except (LibraryError, LibraryUnavailable) as exc:
            return _report_library_error(self, exc)
        for obj in bpy.data.objects:
            if obj.get(CHARACTER_LINK) == character.id:
                del obj[CHARACTER_LINK]
        settings = context.scene.bump_studio
        if settings.library_character in (character.id, character.name):
            settings.library_character = ""
        refresh(context)
        self.report({"INFO"}, f"{character.name} moved to the trash ({trash})")
        return {"FINISHED"}


class BUMP_STUDIO_OT_library_open_folder(bpy.types.Operator):
    """Open the character's folder in the file browser"""

    bl_idname = "bump_studio.library_open_folder"
    bl_label = "Open Folder"

    character: StringProperty(name="Character")

    def execute(self, context: bpy.types.Context) -> set[str]:
        ref = self.character or selected_character(context)
        try:
            path = open_library(get_prefs(context)).character_path(ref or "")
        except (LibraryError, LibraryUnavailable) as exc:
            return _report_library_error(self, exc)
        if bpy.app.background:
            self.report({"INFO"}, str(path))
        else:
            bpy.ops.wm.path_open(filepath=str(path))
        return {"FINISHED"}


class BUMP_STUDIO_OT_library_set_active(bpy.types.Operator):
    """Make a package version the character's active identity reference"""

    bl_idname = "bump_studio.library_set_active"
    bl_label = "Use This Version"

    character: StringProperty(name="Character")
    version: IntProperty(name="Version", min=1, default=1)

    def execute(self, context: bpy.types.Context) -> set[str]:
        ref = self.character or selected_character(context)
        try:
            package = open_library(get_prefs(context)).set_active(ref or "", self.version)
            refresh(context)
        except (LibraryError, LibraryUnavailable) as exc:
            return _report_library_error(self, exc)
        self.report({"INFO"}, f"version {package.version} is now the reference ({len(package.views)} views)")
        return {"FINISHED"}


class BUMP_STUDIO_OT_library_use(bpy.types.Operator):
    """Use the selected library character as this scene's identity reference (and link the active object to it)"""

    bl_idname = "bump_studio.library_use"
    bl_label = "Use as Reference"
    bl_options = {"REGISTER", "UNDO"}

    character: StringProperty(name="Character")
    link: EnumProperty(name="Link", default="ACTIVE", items=[
        ("ACTIVE", "Active object", "Link the active armature/mesh so its face goes into the sidecar"),
        ("NONE", "Don't link", "Only pick the reference")])

    def execute(self, context: bpy.types.Context) -> set[str]:
        ref = self.character or selected_character(context)
        try:
            character = open_library(get_prefs(context)).get_character(ref or "")
        except (LibraryError, LibraryUnavailable) as exc:
            return _report_library_error(self, exc)
        context.scene.bump_studio.library_character = character.id
        obj = context.active_object
        if self.link == "ACTIVE" and obj is not None and obj.type in {"ARMATURE", "MESH"}:
            obj[CHARACTER_LINK] = character.id
        self.report({"INFO"}, f"{character.name} is the reference for {context.scene.name}")
        return {"FINISHED"}


classes = (BUMP_STUDIO_OT_library_refresh, BUMP_STUDIO_OT_library_create, BUMP_STUDIO_OT_library_edit,
           BUMP_STUDIO_OT_library_delete, BUMP_STUDIO_OT_library_open_folder, BUMP_STUDIO_OT_library_set_active,
           BUMP_STUDIO_OT_library_use)

"""The scene side: studio, camera rig, head finding, package render and manifest.

Modules without ``bpy`` (framing maths, manifest, phenotype, HDRI, PNG, contact sheet) import
anywhere; the Blender-facing ones (studio, demo_character, head_finder, package_render,
scene_session) need Blender or the ``bpy`` module.
"""

"""The thin bpy layers: everything here needs Blender (the bpy module or a real Blender)."""

"""Pure maths and data of the scene side (numpy at most, never bpy)."""

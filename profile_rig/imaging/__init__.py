"""PNG and contact-sheet imaging in plain numpy, usable inside Blender (no Pillow there)."""

"""Headless work: profile packages and batch runs from plain Python (``bpy`` module) or ``blender -b``."""

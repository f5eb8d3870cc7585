"""Entry point for a real Blender: ``blender -b FILE.blend -P .../profile_rig/blender/blender_entry.py -- package --out DIR``.

What the add-on runs for a package render in the background; arguments after ``--`` are those of
``python -m profile_rig.blender.package_cli``. The open file is used unless ``--demo`` or ``--blend``
says otherwise.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from profile_rig.blender.package_cli import main

argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
code = main(argv, in_blender=True)
if code:
    sys.exit(code)

"""Entry point for a real Blender: ``blender -b FILE.blend -P headless_renderer/blender_entry.py -- package --out DIR``.

Arguments after ``--`` are the same as for ``python -m headless_renderer``; the open file is used
unless ``--demo`` or ``--blend`` says otherwise.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from headless_renderer.cli import main

argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
code = main(argv, in_blender=True)
if code:
    sys.exit(code)

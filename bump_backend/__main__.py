"""``python -m bump_backend``: see bump_backend.cli."""

from bump_backend.cli import main

raise SystemExit(main())

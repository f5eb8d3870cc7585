import sys

from headless_renderer.cli import main

sys.exit(main())

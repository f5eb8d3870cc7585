"""``python -m headless_renderer.batch JOB.toml`` (the same as ``python -m headless_renderer batch JOB.toml``)."""

import sys

from headless_renderer.batch.cli import main

if __name__ == "__main__":
    sys.exit(main())

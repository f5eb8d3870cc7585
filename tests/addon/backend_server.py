"""Run the real bump backend with the generator's tiny model, in its own process (torch never in bpy's).

``python tests/addon/backend_server.py --root DIR --port N``: builds the tiny SD 1.5 + plus-face
IP-Adapter into ``DIR/models`` on first use (the same builders the server's own tests use), then
serves through ``bump_backend.server.cli`` with ``DIR/data`` as its data folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_models(root: Path) -> Path:
    spec_path = root / "spec.json"
    if spec_path.is_file():
        return spec_path
    from bump_backend.testing import tiny_models as tiny

    sd15 = tiny.build_tiny_sd15(root / "sd15")
    ip_dir, weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plus-face")
    spec = {"base": str(sd15), "ip_adapter": str(ip_dir), "ip_adapter_weight": weight, "device": "cpu"}
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    return spec_path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--models", help="the tiny models' folder (default ROOT/models; another server's is reused)")
    parser.add_argument("--package-root", action="append", default=[], help="passed on to serve")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(1)
    root = Path(args.root)
    spec = build_models(Path(args.models) if args.models else root / "models")
    from bump_backend.server.cli import main as serve

    roots = [arg for folder in args.package_root for arg in ("--package-root", folder)]
    return serve(["--port", str(args.port), "--data-dir", str(root / "data"), "--model", str(spec),
                  "--threads", "1", "--log-level", "warning", *roots])


if __name__ == "__main__":
    sys.exit(main())

"""Build the extension zip: ``python -m addon.build [--out dist/]``.

The zip holds the add-on's own files at its root, a ``blender_manifest.toml`` derived from the
project's top-level one, and a pure-Python wheel of the Blender side of this project (the contracts,
the backend client, the character library and profile_rig: whole packages, nothing hand-picked) listed in the manifest's ``wheels`` field, the way
Blender wants extensions to bring their Python dependencies. Blender's own extension CLI
(``blender_ext.py`` from the ``bpy`` wheel) builds and validates it, run with plain Python.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from bump_contracts.cli_errors import CliParser

REPO = Path(__file__).resolve().parent.parent
ADDON = Path(__file__).resolve().parent
# What Blender's Python needs from this project: never the GPU side (torch), never the tests.
WHEEL_SOURCES = ("bump_contracts", "bump_client", "character_library", "profile_rig")
ADDON_EXCLUDE = {"build.py"}


class BuildError(RuntimeError):
    """The build could not finish; the message says which step and why."""


def find_extension_cli() -> Path:
    """``blender_ext.py`` inside the installed ``bpy`` wheel (or ``$BLENDER_EXT_CLI``), without importing bpy."""
    override = os.environ.get("BLENDER_EXT_CLI")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("bpy")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        found = sorted(Path(root).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise BuildError("Blender's extension CLI was not found: install the bpy wheel (pip install bpy==5.0.1) "
                     "or set BLENDER_EXT_CLI to blender_ext.py")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # TOML basic strings use the same escapes as JSON
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise BuildError(f"cannot write {value!r} to TOML")


def dump_manifest(data: dict) -> str:
    """A TOML file from a manifest dictionary (scalars and lists first, then one level of tables)."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def extension_manifest(wheels: list[str]) -> dict:
    """The top-level manifest plus the bundled wheels."""
    data = tomllib.loads((REPO / "blender_manifest.toml").read_text(encoding="utf-8"))
    data["wheels"] = [f"./wheels/{name}" for name in wheels]
    return data


def build_wheel(dest: Path) -> Path:
    """A pure-Python wheel of the Blender side of the project, built from a filtered copy of the tree."""
    with tempfile.TemporaryDirectory(prefix="bump_wheel_src_") as tmp:
        src = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, src / name)
        for package in WHEEL_SOURCES:
            shutil.copytree(REPO / package, src / package, ignore=ignore)
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
               "--quiet", str(src), "-w", str(dest)]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=src)
        if done.returncode != 0:
            raise BuildError(f"pip wheel failed:\n{done.stderr.strip()[-2000:]}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1 or not wheels[0].name.endswith("-py3-none-any.whl"):
        raise BuildError(f"expected one pure-Python wheel, got {[w.name for w in wheels]}")
    return wheels[0]


def stage(staging: Path) -> Path:
    """Add-on files at the root, the wheel under wheels/, the generated manifest."""
    for path in sorted(ADDON.glob("*.py")):
        if path.name not in ADDON_EXCLUDE:
            shutil.copy2(path, staging / path.name)
    wheel = build_wheel(staging / "wheels")
    manifest = extension_manifest([wheel.name])
    (staging / "blender_manifest.toml").write_text(dump_manifest(manifest), encoding="utf-8")
    return staging


def run_cli(cli: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(cli), *args], capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0 or "error" in output.lower().split("\n")[-1]:
        raise BuildError(f"blender_ext {args[0]} failed:\n{output[-3000:]}")
    return output


def build(out: str | os.PathLike = "dist", *, keep_staging: bool = False) -> Path:
    """Build and validate the extension zip; returns its path."""
    cli = find_extension_cli()
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="bump_ext_stage_"))
    try:
        stage(staging)
        manifest = tomllib.loads((staging / "blender_manifest.toml").read_text(encoding="utf-8"))
        zip_path = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
        zip_path.unlink(missing_ok=True)
        run_cli(cli, "build", "--source-dir", str(staging), "--output-filepath", str(zip_path))
        if not zip_path.is_file():
            raise BuildError(f"blender_ext build did not write {zip_path}")
        run_cli(cli, "validate", str(zip_path))
    finally:
        if keep_staging:
            print(f"staging kept at {staging}", file=sys.stderr)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    return zip_path


def build_parser() -> CliParser:
    parser = CliParser(
        prog="python -m addon.build",
        description="Build the Blender extension zip (add-on + a wheel of the Blender-side packages) and check "
                    "it with Blender's own extension validator.\n\nInstall the zip in Blender: Edit > Preferences > "
                    "Get Extensions > Install from Disk.")
    parser.add_argument("--out", default=str(REPO / "dist"), metavar="DIR",
                        help="folder for the zip (default: dist/ in the checkout)")
    parser.add_argument("--keep-staging", action="store_true", help="keep the staging folder to look at what went in")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = build(args.out, keep_staging=args.keep_staging)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The package command: ``python -m headless_renderer package ...`` (plain Python with the ``bpy``
module) or ``blender -b FILE.blend -P headless_renderer/blender_entry.py -- package ...`` (a real
Blender). It lives on the Blender side so the add-on's background render runs it from the extension's
own wheel (``python -m profile_rig.blender.package_cli package ...``); ``headless_renderer`` adds batch
and library commands around it.

Errors print one line (``error: ...``) and exit non-zero; progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bump_contracts import package_params
from bump_contracts.cli_errors import CliParser
from bump_contracts.errors import ContractError
from bump_contracts.pose import PoseError, pose_from_args
from bump_contracts.views import ViewError, near_duplicates, resolve_views

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def _resolution(text: str) -> tuple[int, int]:
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution must be N or WxH, got {text!r}") from None
    try:
        return package_params.check_resolution(w, h)
    except ContractError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _face_part(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"face part must be NAME=VALUE (e.g. nose-scale-horiz=0.3), got {text!r}")
    try:
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"face part value must be a number, got {value!r}") from None


def _add_demo_arguments(p) -> None:
    demo = p.add_argument_group("demo character phenotype")
    demo.add_argument("--phenotype", default=None, metavar="PRESET",
                      help="starting preset: demo_man (Mateo) or demo_woman (Aiko); default: the one "
                           "nearest --gender (demo_man without it)")
    demo.add_argument("--age", type=float, help="years, 1-90")
    demo.add_argument("--gender", help="male, female or 0..1")
    demo.add_argument("--ethnicity", help="african, asian, caucasian or a mix like african=0.6,caucasian=0.4")
    demo.add_argument("--muscle", type=float, help="0..1")
    demo.add_argument("--weight", type=float, help="0..1")
    demo.add_argument("--face", type=_face_part, action="append", default=[], metavar="PART=VALUE", help="face part, e.g. nose-scale-horiz=0.4 (repeatable)")
    demo.add_argument("--hair-color", help="auto, black, dark_brown, brown, auburn, blonde, grey, white")
    demo.add_argument("--eye-color", help="auto, brown, dark_brown, hazel, green, blue, grey")
    demo.add_argument("--hair", choices=("short", "none"), help="hair style")
    demo.add_argument("--rig", default="default", help="demo armature from the MPFB2 data: default, game_engine, mixamo, rigify")


def add_package_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "package",
        help="render a profile package (multi-angle head shots + package.json)",
        description="Render a character's profile package: white studio, head-aimed cameras, package.json and a "
                    "contact sheet. Without --blend the built-in demo character is rendered; its phenotype options "
                    "below shape it.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--demo", action="store_true", help="render the built-in demo character (default without --blend)")
    src.add_argument("--blend", metavar="FILE", help="open this .blend file and render a character from it")
    p.add_argument("--character", metavar="OBJECT", help="armature or mesh of the character (default: auto-detect)")
    p.add_argument("--head-bone", help="use this bone as the head")
    p.add_argument("--eye-bones", metavar="LEFT,RIGHT", help="use these bones as the subject's left,right eyes")
    p.add_argument("--head-object", metavar="OBJECT", help="an object placed at the head centre (-Y forward, +Z up)")
    p.add_argument("--out", required=True, metavar="DIR", help="package folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package in --out")
    p.add_argument("--views", default="default", help="view set (default, minimal, faces) or comma-separated views; custom: name:yaw[:pitch[:roll]]")
    p.add_argument("--resolution", type=_resolution, default=(720, 720), help="N or WxH pixels (default 720)")
    p.add_argument("--samples", type=int, help="Cycles samples (default from the preset: 6)")
    p.add_argument("--preset", default="fast", help="render preset: fast (default), preview, blender_default, reference")
    p.add_argument("--engine", help="cycles (default), eevee (needs EGL/GPU), workbench")
    p.add_argument("--studio", default="almost_white", help="studio preset: almost_white (default), soft_key, grey")
    p.add_argument("--hdri", metavar="FILE", help="light with this HDRI instead of the preset's generated one")
    p.add_argument("--face-fill", type=float, default=0.40, help="share of the frame height the face fills (default 0.40)")
    p.add_argument("--lens", type=float, default=85.0, help="lens in mm on a 36 mm sensor (default 85)")
    p.add_argument("--name", help="character name: goes into package.json and names the character id "
                                  "(demo default: the preset's, Mateo or Aiko)")
    _add_demo_arguments(p)
    pose = p.add_argument_group("pose and expression")
    pose.add_argument("--pose", action="append", default=[], metavar="CONTROL=TURN,TILT[,ROLL]", help="degrees for head, neck or eyes (turn toward the character's left, tilt chin up), e.g. head=20,0,0 (repeatable)")
    pose.add_argument("--expression", action="append", default=[], metavar="NAME[=WEIGHT]", help="expression on every view: smile, open_mouth, brows_up, frown, blink, surprise or an MPFB2 unit like mouth-open; weight 0..1 (repeatable)")
    pose.add_argument("--expressions", default="", metavar="NAME,NAME", help="add front and three-quarter views per expression, e.g. neutral,smile")
    pose.add_argument("--no-pose-views", action="store_true", help="move only the camera for over-shoulder and up/down views (no head/neck posing)")
    p.add_argument("--json", action="store_true", help="print the package path and per-view timings as JSON")
    p.set_defaults(handler=run_package)


def _phenotype(args):
    from profile_rig.core.phenotype import PRESETS, Phenotype, parse_ethnicity, parse_gender, preset_for_gender

    gender = parse_gender(args.gender) if args.gender is not None else None
    preset = args.phenotype or preset_for_gender(gender)
    if preset not in PRESETS:
        raise UserError(f"unknown phenotype preset {preset!r}; presets: {', '.join(PRESETS)}")
    data = PRESETS[preset].to_dict()
    if args.name:
        data["name"] = args.name
    if args.age is not None:
        data["age"] = args.age
    if gender is not None:
        data["gender"] = gender
    if args.ethnicity:
        data["ethnicity"] = parse_ethnicity(args.ethnicity)
    for key in ("muscle", "weight", "hair_color", "eye_color", "hair"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.face:
        data["face"] = {**data["face"], **dict(args.face)}
    return Phenotype.from_dict(data)


def _check_output(out: str, overwrite: bool) -> Path:
    """Fail before any rendering if the package cannot be written where asked."""
    path = Path(out).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UserError(f"--out {path} is not empty; choose another folder or pass --overwrite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write_check_"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    return path


@contextlib.contextmanager
def _stdout_to_stderr():
    """Blender prints render chatter on stdout; keep stdout for results (e.g. --json)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_package(args, *, in_blender: bool = False) -> int:
    from profile_rig.core.render_presets import PRESETS
    from profile_rig.core.studio_hdri import STUDIOS, check_environment_image

    try:
        views = resolve_views(args.views)
    except ViewError as exc:
        raise UserError(str(exc)) from None
    duplicates = [pair for pair in near_duplicates(views)]
    if duplicates:
        print(f"warning: views at nearly the same angle: {duplicates}", file=sys.stderr)
    if args.preset not in PRESETS:
        raise UserError(f"unknown preset {args.preset!r}; presets: {', '.join(PRESETS)}")
    preset = PRESETS[args.preset]
    try:
        preset = preset.with_overrides(samples=args.samples, engine=args.engine)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.studio not in STUDIOS:
        raise UserError(f"unknown studio {args.studio!r}; presets: {', '.join(STUDIOS)}")
    if args.hdri:
        if not os.path.isfile(args.hdri):
            raise UserError(f"HDRI not found: {args.hdri}")
        check_environment_image(args.hdri)  # a junk file would render magenta faces, not fail
    try:
        if args.samples is not None:
            package_params.SAMPLES.check(args.samples, "--samples")
        package_params.FACE_FILL.check(args.face_fill, "--face-fill")
        package_params.LENS.check(args.lens, "--lens")
    except ContractError as exc:
        raise UserError(str(exc)) from None
    eye_bones = None
    if args.eye_bones:
        parts = [p.strip() for p in args.eye_bones.split(",")]
        if len(parts) != 2 or not all(parts):
            raise UserError("--eye-bones must be LEFT,RIGHT")
        eye_bones = (parts[0], parts[1])
    pose, expression_views = _pose(args)
    out = _check_output(args.out, args.overwrite)
    if args.blend and not os.path.isfile(args.blend):
        raise UserError(f"blend file not found: {args.blend}")
    use_demo = args.demo or (not args.blend and not in_blender)
    phenotype = _phenotype(args) if use_demo else None
    if preset.engine == "BLENDER_EEVEE":
        from profile_rig.blender.engine_probe import eevee_available

        ok, reason = eevee_available()
        if not ok:
            raise UserError(f"EEVEE cannot render here ({reason}); use --engine cycles")

    with _stdout_to_stderr():
        session, result = _render(args, phenotype, eye_bones, views, preset, out, pose, expression_views)
    if args.json:
        print(
            json.dumps(
                {
                    "package": str(result.path),
                    "character": session.name,
                    "views": {k: round(v, 3) for k, v in result.seconds_per_view.items()},
                    "poses": {v.name: v.pose for v in result.manifest.views if v.pose},
                    "total_seconds": round(result.total_seconds, 3),
                    "head_method": session.found.method,
                }
            )
        )
    else:
        print(f"package written to {result.path} ({len(result.manifest.views)} views, {result.total_seconds:.1f} s)")
    return EXIT_OK


def _pose(args):
    """The --pose/--expression pose and the --expressions list, checked before anything renders."""
    from profile_rig.core.rig_data import RIGS

    if args.rig not in RIGS:
        raise UserError(f"unknown rig {args.rig!r}; rigs: {', '.join(RIGS)}")
    try:
        pose = pose_from_args(args.pose, args.expression)
    except PoseError as exc:
        raise UserError(str(exc)) from None
    extra = tuple(e.strip() for e in args.expressions.split(",") if e.strip())
    for name in extra:
        try:
            pose_from_args([], [name])
        except PoseError as exc:
            raise UserError(str(exc)) from None
    uses_demo = args.demo or not args.blend
    if uses_demo and (pose.expression or extra):
        from profile_rig.core.expressions import known_expressions

        known = known_expressions()
        unknown = [name for name in [*pose.expression, *extra] if name not in known]
        if unknown:
            raise UserError(f"unknown expression {unknown[0]!r}; known: {', '.join(known)}")
    return pose, extra


def _render(args, phenotype, eye_bones, views, preset, out, pose, expressions):
    from profile_rig.blender.package_render import PackageOptions
    from profile_rig.blender.scene_session import prepare_scene
    from profile_rig.core.camera_math import Framing

    session = prepare_scene(
        demo=phenotype,
        blend=args.blend,
        character=args.character,
        head_bone=args.head_bone,
        eye_bones=eye_bones,
        head_object=args.head_object,
        rig=args.rig,
    )
    options = PackageOptions(
        views=views,
        resolution=args.resolution,
        preset=preset,
        studio=args.studio,
        hdri_path=args.hdri,
        framing=Framing(face_fill=args.face_fill),
        lens_mm=args.lens,
        overwrite=args.overwrite,
        pose=pose,
        pose_views=not args.no_pose_views,
        expressions=expressions,
    )

    def progress(index: int, total: int, name: str, seconds: float) -> None:
        print(f"[{index}/{total}] {name}: {seconds:.1f} s", file=sys.stderr, flush=True)

    print(
        f"rendering {len(views)} views of {session.name} at {args.resolution[0]}x{args.resolution[1]} "
        f"({preset.engine.lower()}, {preset.samples} samples, head via {session.found.method})",
        file=sys.stderr,
        flush=True,
    )
    result = session.render(out, options, progress)
    return session, result


def add_animation_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "animation",
        help="render the demo clip: frames, render sidecars and motion vectors",
        description="Render a short clip of the demo character (head turn, blink, smile): one PNG, render "
        "sidecar and Cycles motion-vector array per frame, and clip.json.",
    )
    p.add_argument("--demo", action="store_true", help="the built-in demo character (the only source for now)")
    p.add_argument("--out", required=True, metavar="DIR", help="clip folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing clip in --out")
    p.add_argument("--frames", type=int, default=36, help="number of frames (default 36: 3 s at 12 fps)")
    p.add_argument("--fps", type=int, default=12, help="frames per second recorded in clip.json (default 12)")
    p.add_argument("--resolution", type=_resolution, default=(384, 384), help="N or WxH pixels (default 384)")
    p.add_argument("--samples", type=int, help="Cycles samples (default from the fast preset)")
    p.add_argument("--walk", type=float, default=0.25, help="share of the distance to the camera the character walks "
                   "toward it over the clip, 0..0.6 (default 0.25; 0: stands still)")
    p.add_argument("--name", help="character name (default: the preset's)")
    _add_demo_arguments(p)
    p.add_argument("--json", action="store_true", help="print the clip path and timing as JSON")
    p.set_defaults(handler=run_animation)


def run_animation(args, *, in_blender: bool = False) -> int:
    from profile_rig.core.pose_math import demo_clip_poses
    from profile_rig.core.render_presets import FAST
    from profile_rig.core.rig_data import RIGS

    if not 1 <= args.frames <= 2000:
        raise UserError("--frames must be within 1..2000")
    if not 1 <= args.fps <= 240:
        raise UserError("--fps must be within 1..240")
    if not 0.0 <= args.walk <= 0.6:
        raise UserError("--walk must be within 0..0.6 (a share of the distance to the camera)")
    try:
        if args.samples is not None:
            package_params.SAMPLES.check(args.samples, "--samples")
    except ContractError as exc:
        raise UserError(str(exc)) from None
    if args.rig not in RIGS:
        raise UserError(f"unknown rig {args.rig!r}; rigs: {', '.join(RIGS)}")
    phenotype = _phenotype(args)
    out = _check_output(args.out, args.overwrite)
    preset = FAST.with_overrides(samples=args.samples)
    started = time.perf_counter()
    with _stdout_to_stderr():
        from profile_rig.blender.animation_render import ClipOptions, render_clip
        from profile_rig.blender.scene_session import prepare_scene

        session = prepare_scene(demo=phenotype, rig=args.rig)
        options = ClipOptions(poses=demo_clip_poses(args.frames), fps=args.fps, resolution=args.resolution,
                              preset=preset, overwrite=args.overwrite, walk=args.walk)

        def progress(index: int, total: int, seconds: float) -> None:
            print(f"[{index}/{total}] frame {index}: {seconds:.1f} s", file=sys.stderr, flush=True)

        path = render_clip(session.found, session.objects, out, options, character_name=session.name, progress=progress)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"clip": str(path), "frames": args.frames, "total_seconds": round(seconds, 3)}))
    else:
        print(f"clip written to {path} ({args.frames} frames, {seconds:.1f} s)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="python -m profile_rig.blender.package_cli",
                                     description="Render a profile package (the add-on runs this in a background process).")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_package_parser(subparsers)
    add_animation_parser(subparsers)
    return parser


def main(argv: list[str] | None = None, *, in_blender: bool = False,
         parser: argparse.ArgumentParser | None = None) -> int:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args, in_blender=in_blender)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; no partial package was left behind", file=sys.stderr)
        return 130
    except Exception as exc:
        known = known_error(exc)
        print(f"error: {known or f'{type(exc).__name__}: {exc}'}", file=sys.stderr)
        if os.environ.get("BUMP_DEBUG"):
            raise
        return EXIT_BAD_INPUT if known else EXIT_FAILED


def known_error(exc: Exception) -> str | None:
    from profile_rig.core.mpfb_data import DemoDataError
    from profile_rig.core.package_writer import PackageExistsError
    from profile_rig.core.phenotype import PhenotypeError
    from profile_rig.core.studio_hdri import StudioError

    known: tuple[type[Exception], ...] = (
        ContractError,
        DemoDataError,
        PackageExistsError,
        PhenotypeError,
        StudioError,
        PermissionError,
        FileNotFoundError,
    )
    try:
        from profile_rig.blender.head_finder import HeadNotFoundError
        from profile_rig.blender.posing import PoseError as RigPoseError

        known = known + (HeadNotFoundError, RigPoseError)
    except ImportError:
        pass
    return str(exc) if isinstance(exc, known) else None


if __name__ == "__main__":
    sys.exit(main())

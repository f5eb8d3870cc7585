"""``python -m bump_backend sequence INPUT --out DIR``: bump a video or a frame folder as one sequence.

INPUT is a video file (H.264/ProRes/...: anything FFmpeg reads) or a folder of numbered frames with
optional render sidecars (``name0001.json``) and motion (``name0001.flow.npy``). Writes
``DIR/frames/*.png``, ``DIR/<input>_bump.mp4`` (audio copied), ``DIR/sequence.json`` and
``DIR/before_after.png``. Run it again with the same arguments to resume after an interruption.
``--analyse-only`` stops before the first frame is bumped (no model is loaded): the face tracks, the
gate's decision per face and frame, and a strip with the tracked face boxes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import fields

from bump_backend.generate.model_args import add_model_options, spec_from_args
from bump_contracts.errors import ContractError
from bump_contracts.sequence_job import SEQUENCE_PARAMS, SequenceParams

# torch, diffusers and the face pipeline load inside run(): the dispatcher imports this module to
# build its parser.

_DEFAULTS = SequenceParams()


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sequence", help="bump a video or frame folder with one identity, without flicker",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return build_parser(parser)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m bump_backend sequence", description=__doc__)
    parser.add_argument("input", help="video file or folder of numbered frames")
    parser.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    parser.add_argument("--package", help="profile package folder: the identity of every face")
    parser.add_argument("--verbose", action="store_true", help="let mediapipe's own log through to stderr")
    parser.add_argument("--analyse-only", action="store_true",
                        help="find, track, smooth and gate the faces and choose the references, bump nothing and "
                             "load no model: writes analysis.json, sequence.json and before_after.png (the tracked "
                             "face boxes); a video needs no package")
    parser.add_argument("--character-package", action="append", default=[], metavar="CHARACTER_ID=DIR",
                        help="package of one sidecar character (repeatable)")
    for f in fields(SequenceParams):
        rule = SEQUENCE_PARAMS[f.name]
        default = getattr(_DEFAULTS, f.name)
        if rule.kind == "bool":
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"(default: {'on' if default else 'off'})")
        else:
            kind = {"int": int, "float": float, "str": str}[rule.kind]
            parser.add_argument(_flag(f.name), dest=f.name, type=kind, default=default,
                                choices=rule.choices or None, help=f"{rule.describe()} (default: {default})")
    add_model_options(parser)  # the same model options as `bump` and `serve`
    model = parser.add_argument_group("bump settings (as for `bump`)")
    model.add_argument("--prompt", default=None)
    model.add_argument("--negative-prompt", default=None)
    model.add_argument("--seed", type=int, default=None, help="-1 for random (resolved once, recorded)")
    model.add_argument("--steps", type=int, default=None)
    model.add_argument("--cfg", type=float, default=None)
    model.add_argument("--denoise", type=float, default=None)
    model.add_argument("--sampler", default=None)
    model.add_argument("--ip-scale", type=float, default=None)
    model.add_argument("--face-steps", type=int, default=None)
    model.add_argument("--face-cfg", type=float, default=None)
    model.add_argument("--face-denoise", type=float, default=None)
    model.add_argument("--face-prompt", default=None)
    model.add_argument("--face-ip-scale", type=float, default=None)
    model.add_argument("--face-size", type=int, default=None)
    return parser


def run(args: argparse.Namespace) -> int:
    # the job pulls OpenCV, PyAV and mediapipe; the dispatcher imports this module for every command
    from bump_backend.generate import cli as bump_cli
    from bump_backend.sequence.job import FaceOptions, SequenceJob
    from bump_backend.sequence.sources import SourceError

    # Everything cheap is checked first: parameters, paths, the input's header, the packages.
    try:
        params = SequenceParams(**{f.name: getattr(args, f.name) for f in fields(SequenceParams)})
        for name in ("settings_from", "max_side", "candidates"):
            setattr(args, name, None)
        args.no_face_pass = args.no_whole_pass = False
        settings = bump_cli._settings(bump_cli._params(args))  # the bump command's checks, then its settings
        packages = bump_cli._pairs(args.character_package, "--character-package", "DIR")
        job = SequenceJob(args.input, args.out, params, package=args.package, packages=packages,
                          face=FaceOptions(settings.face_size, settings.face_padding, settings.seed),
                          settings_record=settings.to_dict(), analyse_only=args.analyse_only)
    except (ContractError, SourceError, bump_cli.InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.analyse_only:
        return _analyse(job, args)
    from bump_backend.faces import runtime  # mediapipe's log silencer (heavy: mediapipe)

    # progress keeps its own copy of stderr: the quiet block sends the native log's fd 2 to /dev/null
    with os.fdopen(os.dup(sys.stderr.fileno()), "w") as progress:
        job.log = lambda message: print(message, file=progress, flush=True)
        quiet = contextlib.nullcontext if args.verbose else runtime.quiet_native_logs
        try:
            with quiet():  # the analysis first: a clip without a face to bump never loads a model
                to_bump = job.faces_to_bump()
        except (SourceError, ValueError) as exc:  # an unreadable frame, a folder of another job
            print(f"error: {exc}", file=progress)
            return 2
        bumper = None
        if to_bump:
            bumper = _bumper(args, settings)
            if bumper is None:
                return 2
        else:
            print("sequence: no face is large and sharp enough to bump in any frame; the frames are written "
                  "unchanged and no model is loaded", file=progress, flush=True)
        with quiet():
            record = job.run(bumper)
    bumped = sum(t["bumped"] for t in record["tracks"])
    print(f"{len(record['frames'])} frames, {len(record['tracks'])} track(s), {bumped} face(s) bumped: {args.out}")
    for warning in record["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _bumper(args: argparse.Namespace, settings):
    """The engine for the face pass (torch and diffusers load here, once the clip is known to need
    them); None after printing the model error."""
    from bump_backend.generate.engine import BumpEngine
    from bump_backend.generate.models import ModelError
    from bump_backend.sequence.bumper import EngineBumper

    try:
        return EngineBumper(BumpEngine(spec_from_args(args)), settings)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _analyse(job, args: argparse.Namespace) -> int:
    """``--analyse-only``: the tracks and the gate's decisions, no model (mediapipe runs for footage)."""
    from bump_backend.faces import runtime  # mediapipe's log silencer (heavy: mediapipe)
    from bump_backend.sequence.sources import SourceError

    with os.fdopen(os.dup(sys.stderr.fileno()), "w") as progress:
        job.log = lambda message: print(message, file=progress, flush=True)
        try:
            with contextlib.nullcontext() if args.verbose else runtime.quiet_native_logs():
                record = job.run_analysis()
        except (SourceError, ValueError) as exc:  # a frame the analysis cannot read, a folder of another job
            print(f"error: {exc}", file=progress)
            return 2
    for track in record["tracks"]:
        first, last = track["frames"]
        refs = f", reference frames {track['reference_frames']}" if track["reference_frames"] else ""
        print(f"{track['id']} ({track['colour']}): frames {first}-{last}, {track['bumped']} of {track['observed']} "
              f"would be bumped, seed {track['seed']}{refs}")
    print(f"{len(record['frames'])} frames, {len(record['tracks'])} track(s), nothing bumped (analysis only): "
          f"{args.out}/sequence.json, {args.out}/before_after.png")
    for warning in record["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0

"""``python -m bump_backend bump IMAGE --package DIR --out DIR``: one bump from the command line.

Writes ``<stem>.png`` (A1111 ``parameters`` + record chunks), ``<stem>.json`` (the record),
``<stem>_mask.png`` and ``<stem>_face<i>[_input].png``. ``--reproduce RECORD`` replays a record
(a PNG we wrote or its JSON) instead; ``--settings-from PNG`` starts from an A1111 image's settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bump_backend.generate import infotext
from bump_backend.generate.inputs import InputError, check_image, check_out_folder, check_package, check_sidecar
from bump_backend.generate.model_args import add_model_options, spec_from_args
from bump_contracts import render_sidecar
from bump_contracts.bump_job import validate_params
from bump_contracts.bump_record import BumpRecord
from bump_contracts.cli_errors import CliParser
from bump_contracts.errors import ContractError

# Kept light at import time (the backend's dispatcher imports every subcommand module to build its
# parser, and every input is checked before anything slow): torch and diffusers load inside run().


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bump`` on the ``python -m bump_backend`` dispatcher."""
    parser = subparsers.add_parser("bump", help="IP-Adapter img2img of an image with a profile package as identity",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return build_parser(parser)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or CliParser(prog="python -m bump_backend bump", description=__doc__)
    parser.add_argument("image", nargs="?", help="the render or photo to bump")
    parser.add_argument("--package", help="profile package folder (the identity reference)")
    parser.add_argument("--sidecar", help="render sidecar JSON (face geometry; without it faces are detected)")
    parser.add_argument("--character-package", action="append", default=[], metavar="CHARACTER_ID=DIR",
                        help="package folder for one character of the sidecar (repeatable); other faces use --package")
    parser.add_argument("--character-prompt", action="append", default=[], metavar="CHARACTER_ID=TEXT",
                        help="that character's own words, added after the face-pass prompt for its faces (repeatable)")
    parser.add_argument("--character-negative", action="append", default=[], metavar="CHARACTER_ID=TEXT",
                        help="that character's negative items, added to the face-pass negative (repeatable)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--stem", default=None, help="output file name stem (default: the image's)")
    parser.add_argument("--prompt", default=None)
    parser.add_argument("--negative-prompt", default=None)
    parser.add_argument("--seed", type=int, default=None, help="-1 for random (recorded)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--cfg", type=float, default=None)
    parser.add_argument("--denoise", type=float, default=None)
    parser.add_argument("--sampler", default=None)
    parser.add_argument("--ip-scale", type=float, default=None)
    parser.add_argument("--face-steps", type=int, default=None)
    parser.add_argument("--face-cfg", type=float, default=None)
    parser.add_argument("--face-denoise", type=float, default=None)
    parser.add_argument("--face-prompt", default=None)
    parser.add_argument("--face-ip-scale", type=float, default=None)
    parser.add_argument("--face-size", type=int, default=None)
    parser.add_argument("--candidates", type=int, default=None, help="seeds per face, ranked by identity")
    parser.add_argument("--max-side", type=int, default=None)
    parser.add_argument("--no-face-pass", action="store_true")
    parser.add_argument("--no-whole-pass", action="store_true")
    parser.add_argument("--settings-from", default=None, help="a PNG with A1111 'parameters' to start from")
    parser.add_argument("--reproduce", default=None, help="replay a record (our PNG or JSON) instead")
    parser.add_argument("--verbose", action="store_true",
                        help="show progress and the libraries' own messages (transformers, diffusers, mediapipe)")
    return add_model_options(parser)


_OPTION_OF = {"ip_adapter_scale": "ip-scale", "face.ip_adapter_scale": "face-ip-scale"}  # parameter -> option


def _params(args: argparse.Namespace) -> dict[str, Any]:
    """The job's parameters as plain values, checked against the job contract (no torch needed)."""
    base: dict[str, Any] = {}
    if args.settings_from:
        check_image(args.settings_from, "--settings-from")
        text = infotext.read_png_text(args.settings_from).get(infotext.PARAMETERS_KEY)
        if text is None:
            raise InputError(f"--settings-from {args.settings_from}: no A1111 'parameters' text in this PNG",
                             "--settings-from")
        base = infotext.settings_values(infotext.parse_infotext(text))
    plain = {"prompt": args.prompt, "negative_prompt": args.negative_prompt, "seed": args.seed,
             "steps": args.steps, "cfg": args.cfg, "denoise": args.denoise, "sampler": args.sampler,
             "ip_adapter_scale": args.ip_scale, "face_size": args.face_size, "candidates": args.candidates,
             "max_side": args.max_side}
    base.update({k: v for k, v in plain.items() if v is not None})
    face = dict(base.pop("face", None) or {})
    face.update({k: v for k, v in {"steps": args.face_steps, "cfg": args.face_cfg, "denoise": args.face_denoise,
                                   "prompt": args.face_prompt, "ip_adapter_scale": args.face_ip_scale}.items()
                 if v is not None})
    if args.no_face_pass:
        base["face_pass"] = False
    if args.no_whole_pass:
        base["whole_pass"] = False
    if face:
        base["face"] = face
    try:
        validate_params(base, ranges=True)
    except ContractError as exc:  # "params.steps must be ..." -> "--steps must be ..."
        name = (exc.field or "params").removeprefix("params.")
        option = "--" + _OPTION_OF.get(name, name).replace("face.", "face-").replace("_", "-")
        raise InputError(str(exc).replace(exc.field or "params", option, 1), option) from None
    return base


def _settings(params: dict[str, Any]):
    from bump_backend.generate.settings import BumpSettings, PassOverrides  # imports torch (prompts)

    params = dict(params)
    return BumpSettings.from_dict({**params, "face": PassOverrides(**params.pop("face", {}))})


def _pairs(items: list[str], flag: str, what: str) -> dict[str, str]:
    """``ID=VALUE`` options as a mapping, checked before any model loads."""
    out = {}
    for item in items:
        cid, sep, value = item.partition("=")
        if not sep or not cid or not value:
            raise InputError(f"{flag} expects CHARACTER_ID={what}, got {item!r}", flag)
        out[cid] = value
    return out


def _print_progress(stage: str, step: int, total: int) -> None:
    print(f"\r{stage}: {step}/{total}", end="\n" if step == total else "", file=sys.stderr, flush=True)


@contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Without ``--verbose``, the libraries' own output (transformers and diffusers warnings, mediapipe's
    and TensorFlow Lite's native log lines) goes nowhere, so an error is one line, not the last of 25."""
    if verbose:
        yield
        return
    for name, value in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("GLOG_minloglevel", "3"), ("TRANSFORMERS_VERBOSITY", "error"),
                        ("DIFFUSERS_VERBOSITY", "error"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(name, value)
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # native code (mediapipe, TF Lite) writes to the descriptor, not to sys.stderr
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def _check_record(args: argparse.Namespace) -> BumpRecord:
    """``--reproduce``: the record and every file it needs, before the model loads."""
    source = Path(args.reproduce)
    if not source.is_file():
        raise InputError(f"--reproduce {source}: no such file", "--reproduce")
    try:
        record = BumpRecord.from_dict(infotext.read_record(source))
    except (ValueError, OSError) as exc:  # ContractError, bad JSON, no bump_record chunk
        raise InputError(f"--reproduce {source}: {exc}", "--reproduce") from None
    if not (args.image or record.input.path):
        raise InputError(f"--reproduce {source}: the record names no input image; pass IMAGE", "image")
    check_image(args.image or record.input.path, "image")
    package = args.package or (record.package.path if record.package is not None else None)
    if package:
        check_package(package, "--package")
    for cid, entry in record.packages.items():
        check_package(entry.path if entry is not None else "", f"package of character {cid!r}")
    return record


def _check_job(args: argparse.Namespace) -> dict[str, Any]:
    """Every input of a bump, checked in well under a second (no torch, no model)."""
    if not args.image:
        raise InputError("IMAGE is required (or --reproduce RECORD)", "image")
    check_image(args.image, "image")
    if args.sidecar:
        check_sidecar(args.sidecar, "--sidecar")
    if args.package:
        check_package(args.package, "--package")
    packages = _pairs(args.character_package, "--character-package", "DIR")
    for cid, folder in packages.items():
        check_package(folder, f"--character-package {cid}")
    character_prompts: dict[str, dict[str, str]] = {}
    for key, flag in (("prompt", "--character-prompt"), ("negative_prompt", "--character-negative")):
        for cid, text in _pairs(getattr(args, flag[2:].replace("-", "_")), flag, "TEXT").items():
            character_prompts.setdefault(cid, {})[key] = text
    return {"params": _params(args), "packages": packages, "character_prompts": character_prompts}


def run(args: argparse.Namespace) -> int:
    verbose = bool(getattr(args, "verbose", False))
    try:
        check_out_folder(args.out, "--out")
        checked = None if args.reproduce else _check_job(args)
        record = _check_record(args) if args.reproduce else None
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress = _print_progress if verbose else None
    from bump_backend.generate.models import ModelError  # torch and diffusers from here on

    try:
        with _quiet(verbose):
            if record is not None:
                from bump_backend.generate.reproduce import ReproduceError, reproduce

                try:
                    rep = reproduce(record, image=args.image, package=args.package, progress=progress)
                except ReproduceError as exc:
                    raise InputError(str(exc)) from None
            else:
                from bump_backend.generate.engine import BumpEngine  # torch, diffusers

                sidecar = render_sidecar.load(args.sidecar) if args.sidecar else None
                engine = BumpEngine(spec_from_args(args))
                result = engine.run(args.image, args.package, sidecar=sidecar, settings=_settings(checked["params"]),
                                    progress=progress, packages=checked["packages"],
                                    character_prompts=checked["character_prompts"])
    except (ModelError, InputError, ContractError) as exc:  # ContractError: settings the loaded model cannot run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if record is not None:
        paths = rep.result.save(args.out, args.stem or "reproduced")
        print(f"{'identical' if rep.identical else 'DIFFERENT'}: {paths['image']}")
        for line in rep.differences:
            print(f"  {line}")
        return 0 if rep.identical else 3
    paths = result.save(args.out, args.stem or Path(args.image).stem + "_bump")
    print(f"seed {result.record.seed}: {paths['image']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

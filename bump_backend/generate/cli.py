"""``python -m bump_backend bump IMAGE --package DIR --out DIR``: one bump from the command line.

Writes ``<stem>.png`` (A1111 ``parameters`` + record chunks), ``<stem>.json`` (the record),
``<stem>_mask.png`` and ``<stem>_face<i>[_input].png``. ``--reproduce RECORD`` replays a record
(a PNG we wrote or its JSON) instead; ``--settings-from PNG`` starts from an A1111 image's settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bump_backend.generate.model_args import add_model_options, spec_from_args
from bump_contracts import render_sidecar
from bump_contracts.cli_errors import CliParser

# Kept light at import time (the backend's dispatcher imports every subcommand module to build its
# parser): torch and diffusers load inside run().


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
    return add_model_options(parser)


def _settings(args: argparse.Namespace):
    from bump_backend.generate.settings import BumpSettings, PassOverrides

    base: dict = {}
    if args.settings_from:
        from bump_backend.generate import infotext

        text = infotext.read_png_text(args.settings_from).get(infotext.PARAMETERS_KEY)
        if text is None:
            raise SystemExit(f"{args.settings_from}: no A1111 'parameters' text in this PNG")
        base = BumpSettings.from_infotext(infotext.parse_infotext(text)).to_dict()
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
    return BumpSettings.from_dict({**base, "face": PassOverrides(**face)})


def _pairs(items: list[str], flag: str, what: str) -> dict[str, str]:
    """``ID=VALUE`` options as a mapping, checked before any model loads."""
    out = {}
    for item in items:
        cid, sep, value = item.partition("=")
        if not sep or not cid or not value:
            raise SystemExit(f"{flag} expects CHARACTER_ID={what}, got {item!r}")
        out[cid] = value
    return out


def _print_progress(stage: str, step: int, total: int) -> None:
    print(f"\r{stage}: {step}/{total}", end="\n" if step == total else "", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from bump_backend.generate.engine import BumpEngine
    from bump_backend.generate.models import ModelError

    try:
        if args.reproduce:
            from bump_backend.generate.reproduce import reproduce

            rep = reproduce(args.reproduce, image=args.image, package=args.package, progress=_print_progress)
            paths = rep.result.save(args.out, args.stem or "reproduced")
            print(f"{'identical' if rep.identical else 'DIFFERENT'}: {paths['image']}")
            for line in rep.differences:
                print(f"  {line}")
            return 0 if rep.identical else 3
        if not args.image:
            raise SystemExit("IMAGE is required (or --reproduce RECORD)")
        sidecar = None
        if args.sidecar:
            sidecar = render_sidecar.load(args.sidecar)
        settings = _settings(args)
        packages = _pairs(args.character_package, "--character-package", "DIR")
        character_prompts: dict[str, dict[str, str]] = {}
        for key, flag in (("prompt", "--character-prompt"), ("negative_prompt", "--character-negative")):
            for cid, text in _pairs(getattr(args, flag[2:].replace("-", "_")), flag, "TEXT").items():
                character_prompts.setdefault(cid, {})[key] = text
        engine = BumpEngine(spec_from_args(args))
        result = engine.run(args.image, args.package, sidecar=sidecar, settings=settings, progress=_print_progress,
                            packages=packages, character_prompts=character_prompts)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = result.save(args.out, args.stem or Path(args.image).stem + "_bump")
    print(f"seed {result.record.seed}: {paths['image']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

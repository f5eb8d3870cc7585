"""``python -m bump_backend faces ...``: detect faces in an image, or run the align/paste-back self-check."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time

import numpy as np

from bump_backend.faces.types import FaceFinderSettings
from bump_contracts import render_sidecar


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("faces", help="find, align and paste back faces (no GPU needed)",
                            description="Find every face in an image, or check the align/paste-back round trip.")
    verbs = parser.add_subparsers(dest="faces_command", metavar="{detect,roundtrip}", required=True)

    def common(p: argparse.ArgumentParser, many: bool = False) -> None:
        if many:
            p.add_argument("images", nargs="+", metavar="IMAGE",
                           help="images and/or folders of images, all searched in one process")
        else:
            p.add_argument("image", help="PNG/JPEG/TIFF/WebP image")
        p.add_argument("--geometry", metavar="SIDECAR.json", help="render sidecar: faces from the scene, no detector")
        p.add_argument("--cross-check", action="store_true", help="with --geometry: also run the detector")
        p.add_argument("--min-face", type=float, default=24.0, help="smallest face side to search for, px (24)")
        p.add_argument("--skip-smaller", type=float, default=32.0,
                       help="report faces smaller than this as skipped, px (32)")
        p.add_argument("--min-sharpness", type=float, default=22.0,
                       help="skip faces blurrier than this (detect.sharpness, calibrated: 22; 0 = off)")
        p.add_argument("--max-faces", type=int, default=0, help="keep at most this many (0 = all)")
        p.add_argument("--confidence", type=float, default=0.5, help="final score a detected face needs (0.5)")
        p.add_argument("--sort", choices=("largest", "left_to_right", "centre_out"), default="largest")
        p.add_argument("--upside-down", action="store_true",
                       help="also look at the coarser levels upside down: more upside-down faces of ~48 px and up, "
                            "~1.1x the time")
        p.add_argument("--no-second-look", action="store_true",
                       help="no MTCNN: no second look at weak proposals, no P-Net proposals of small faces, no "
                            "O-Net vouching for faces the mesh did not fit; ~0.8x the time, fewer turned and small "
                            "faces found")
        p.add_argument("--no-small-faces", action="store_true",
                       help="no P-Net proposals of small faces (24-34 px) that no window proposed; ~0.9x the time")
        p.add_argument("--debug", metavar="DIR", help="write detections, crops, masks and a contact sheet here")
        p.add_argument("--verbose", action="store_true", help="let mediapipe's own log through to stderr")

    detect = verbs.add_parser("detect", help="list the faces of one or many images (JSON with --json)")
    common(detect, many=True)
    detect.add_argument("--json", action="store_true",
                        help="print JSON: one image -> its result; several -> {images: [...], load_ms, total_ms}")
    detect.add_argument("--track", type=int, default=0, metavar="N",
                        help="the images are frames of one sequence: full detection every N frames, "
                             "tracking in between (FaceTracker; 0 = every image on its own)")
    trip = verbs.add_parser("roundtrip", help="align every face and paste the unmodified crops back")
    common(trip)
    trip.add_argument("--out", required=True, metavar="OUT.png", help="where to write the pasted-back image")
    trip.add_argument("--size", type=int, default=720, help="crop size, a multiple of 8 (720)")
    trip.add_argument("--padding", type=float, default=0.35, help="padding around the face, fraction (0.35)")
    return parser


def _settings(args: argparse.Namespace) -> FaceFinderSettings:
    return FaceFinderSettings(
        min_face_size=args.min_face, skip_smaller_than=args.skip_smaller, min_sharpness=args.min_sharpness,
        max_faces=args.max_faces, confidence=args.confidence, sort=args.sort, cross_check=args.cross_check,
        middle_rotations=(0, 180) if args.upside_down else (), second_look=not args.no_second_look,
        small_faces=not args.no_small_faces)


def _search(args: argparse.Namespace):
    from bump_backend.faces import find_faces, load_image

    image = load_image(args.image)
    sidecar = None
    if args.geometry:
        sidecar = render_sidecar.load(args.geometry)
    return image, find_faces(image, sidecar, _settings(args))


def _print_result(name: str | None, result) -> None:
    if name is not None:
        print(f"{name}:")
    print(f"{len(result.faces)} face(s), {len(result.skipped)} skipped, {result.ms:.0f} ms, "
          f"{result.detector_calls} detector calls")
    for i, f in enumerate(result.faces, 1):
        x0, y0, x1, y1 = f.box
        print(f"  {i}. {f.source:8s} box [{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}] size {f.size:.0f} px "
              f"score {f.score:.2f} roll {f.roll:.1f} yaw {f.yaw:.0f} pitch {f.pitch:.0f}")
    for s in result.skipped:
        print(f"  skipped: {s.face.source} at ({s.face.centre[0]:.0f}, {s.face.centre[1]:.0f}): {s.reason}")


def _detect_many(args: argparse.Namespace) -> int:
    """Every image in one process: models load once; ``--track N`` treats the list as one sequence."""
    # cv2/mediapipe load only when a command runs, so `--help` and the other subcommands stay light.
    from bump_backend.faces import align_face, blazeface, find_faces, load_image, runtime
    from bump_backend.faces.debug import write_debug
    from bump_backend.faces.image_io import ImageError, image_paths
    from bump_backend.faces.track import FaceTracker

    if args.track < 0:
        raise ValueError(f"--track must be 0 (off) or a number of frames, got {args.track}")
    if args.geometry:
        raise ValueError("--geometry describes one image: give exactly one image file, without --track")
    paths = image_paths(args.images)  # every header checked before any model loads
    settings = _settings(args)
    start = time.perf_counter()
    quiet = contextlib.nullcontext() if args.verbose else runtime.quiet_native_logs()
    with quiet:
        blazeface.load()
        if settings.refine_landmarks:
            runtime.face_mesh()
        load_ms = (time.perf_counter() - start) * 1000
        tracker = FaceTracker(settings, detect_every=args.track) if args.track else None
        results: list[tuple[str, object]] = []
        for path in paths:
            try:
                image = load_image(path)
            except ImageError as exc:
                # A file whose header passed but whose data does not decode (truncated, corrupt): the images before
                # and after it are still searched and reported; the exit code (2) says one failed.
                results.append((path, exc))
                if tracker:
                    tracker.reset()  # the sequence has a gap: the next frame is searched in full
                continue
            result = tracker.update(image) if tracker else find_faces(image, settings=settings)
            results.append((path, result))
            if args.debug:  # the same set as one image's: crops and masks too, not an empty mask
                size, padding = getattr(args, "size", 720), getattr(args, "padding", 0.35)
                write_debug(args.debug, path, image, result,
                            [align_face(image, f, size=size, padding=padding) for f in result.faces])
    total_ms = (time.perf_counter() - start) * 1000
    done = [(path, r) for path, r in results if not isinstance(r, ImageError)]
    for _, problem in results:
        if isinstance(problem, ImageError):
            print(f"error: {problem}", file=sys.stderr)  # after the run: native logs are silenced during it
    if args.json:
        entries = [{"path": path, "error": str(r)} if isinstance(r, ImageError) else {"path": path, **r.to_dict()}
                   for path, r in results]
        print(json.dumps({"images": entries, "load_ms": round(load_ms, 1), "total_ms": round(total_ms, 1)}, indent=2))
    else:
        for path, result in done:
            _print_result(path, result)
        per = sum(r.ms for _, r in done) / max(len(done), 1)
        failed = f", {len(results) - len(done)} could not be read" if len(done) < len(results) else ""
        print(f"{len(done)} image(s){failed}: models loaded in {load_ms:.0f} ms, {per:.0f} ms per image, "
              f"{total_ms:.0f} ms in all")
    return 0 if len(done) == len(results) else 2  # bad input, as everywhere on the command line


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) if a.size else 0.0
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def run(args: argparse.Namespace) -> int:
    from bump_backend.faces import align_face, combined_mask, paste_back, runtime
    from bump_backend.faces.debug import write_debug
    from bump_backend.faces.image_io import save_image

    if args.faces_command == "detect":
        images = args.images
        if len(images) == 1 and not os.path.isdir(images[0]) and not args.track:
            args.image = images[0]  # one image: the single-image output, as before
        else:
            return _detect_many(args)
    size = getattr(args, "size", 720)
    padding = getattr(args, "padding", 0.35)
    quiet = contextlib.nullcontext() if args.verbose else runtime.quiet_native_logs()
    with quiet:
        image, result = _search(args)
        aligned = [align_face(image, f, size=size, padding=padding) for f in result.faces]
    if args.faces_command == "detect":
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            _print_result(None, result)
    else:
        out = image
        for a in aligned:
            out = paste_back(out, a, a.crop)
        save_image(args.out, out)
        mask = combined_mask(image.shape, aligned)
        outside = mask == 0
        changed = int(np.count_nonzero(np.any(out[outside] != image[outside], axis=-1)))
        print(f"{len(aligned)} face(s) aligned at {size} px and pasted back -> {args.out}")
        for i, a in enumerate(aligned, 1):
            single = combined_mask(image.shape, [a]) > 0.5
            print(f"  {i}. size {a.face.size:.0f} px roll {a.face.roll:.1f}: PSNR in face {_psnr(out[single], image[single]):.1f} dB")
        print(f"  pixels changed outside the masks: {changed}")
    if args.debug:
        folder = write_debug(args.debug, args.image, image, result, aligned)
        print(f"debug output in {folder}", file=sys.stderr)
    return 0

"""What one unit does, the same under every executor (process pool, in-process, Ray).

Render units (``package``, ``shot``) need ``bpy`` and run in a render worker process; bump units
(``bump_view``, ``bump_shot``) talk HTTP to a backend; ``assemble`` copies files. Each writes its
outputs atomically and then its done-record. ``run_unit`` never raises for a unit's own failure:
it returns ``{"status": "failed", "error": ...}`` so one bad unit never stops the others.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; the output folder's lock is not checked there
    fcntl = None

from bump_client.client import BackendError, BumpClient, JobFailed
from bump_contracts.bump_job import CANCELLED, DONE, FAILED
from bump_contracts.bump_record import BumpRecord
from bump_contracts.package_manifest import character_id_from_name, load_package
from bump_contracts.pose import Pose
from bump_contracts.render_sidecar import RenderSidecar, SidecarFace
from bump_contracts.views import ViewSpec
from headless_renderer.batch.units import STATE_DIR, Unit, lock_path, log_path, state_dir, write_atomic, write_done
from profile_rig.core.camera_math import Framing, Intrinsics
from profile_rig.core.package_writer import PackageStaging
from profile_rig.core.phenotype import Phenotype
from profile_rig.core.render_presets import RenderPreset
from profile_rig.imaging.png_io import read_png

LogFn = Callable[[str], None]
_RENDER_THREADS = 0  # Cycles threads per worker (0 = Blender's automatic count)
_PARENT_PID: int | None = None  # the batch process that started this render worker (None: not a worker)
PARENT_POLL_S = 0.5  # the watchdog's look at the parent, where the kernel cannot be asked to do it
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ParentGone(RuntimeError):
    """The batch process that started this worker is gone: its output folder is no longer ours."""


def _die_with_parent(parent_pid: int) -> None:
    """End this worker within moments of its parent, however the parent ends (``kill -9`` included).

    A process pool's workers outlive a parent killed by SIGKILL (or the OOM killer): they are
    reparented to init and go on rendering queued units into a folder whose lock is gone. On Linux
    the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); everywhere a daemon thread
    also checks that the parent is still ours and kills this process when it is not.
    """
    global _PARENT_PID
    _PARENT_PID = parent_pid
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the kernel was asked to watch it
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def parent_alive() -> bool:
    """False in a render worker whose batch process is gone (always True outside a worker)."""
    return _PARENT_PID is None or os.getppid() == _PARENT_PID


def run_holds_folder(out: Path, run_pid: int) -> bool:
    """True while the batch process ``run_pid`` still holds ``out``'s lock (see ``local.state_lock``).

    The rule for workers that are not the run's own children (Ray tasks and actors, on any node
    that sees the folder): the lock file must name ``run_pid`` and someone must still hold its
    flock. A run killed with ``kill -9`` drops the flock with its descriptors; a later run rewrites
    the pid. Probing takes a shared lock for an instant only when nobody holds it (the run is gone).
    """
    path = lock_path(out)
    try:
        if path.read_text(encoding="utf-8").strip() != str(run_pid):
            return False
        if fcntl is None:
            return True
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # held exclusively: by the run the file names
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def init_render_worker(threads: int = 0, env: dict[str, str] | None = None, core_sets: Any = None,
                       parent_pid: int | None = None) -> None:
    """Process-pool / Ray initialiser: one ``bpy`` per process, the cores split between workers.

    ``threads``: Cycles threads per render (0 = every core). ``core_sets``: a queue of CPU sets, one
    taken per worker, that the process is pinned to. ``parent_pid``: the batch process; the worker
    ends with it (:func:`_die_with_parent`). Pinning matters as much as the thread count:
    a render with one Cycles thread still keeps a second core busy (Blender's task-scheduler threads
    spin while they wait; measured 24 s of CPU for a 12 s render), so two unpinned workers slow each
    other down by that spinning, while two pinned ones each render at full single-core speed.
    """
    global _RENDER_THREADS
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    for key, value in (env or {}).items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="bump_batch_blender_"))
    _RENDER_THREADS = threads
    if core_sets is not None and hasattr(os, "sched_setaffinity"):
        import queue

        # A replacement worker finds the queue empty, and a CPU set may be gone: those run unpinned.
        with contextlib.suppress(queue.Empty, OSError):
            os.sched_setaffinity(0, core_sets.get_nowait())
    import bpy  # noqa: F401  (loaded once per worker, before the first unit)


def worker_core_sets(workers: int, cores: list[int] | None = None) -> list[set[int]]:
    """The CPUs each of ``workers`` render processes is pinned to: equal, disjoint slices (none if too few)."""
    if cores is None:
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if workers < 2 or len(cores) < workers:
        return []
    per = len(cores) // workers
    return [set(cores[i * per:(i + 1) * per]) for i in range(workers)]


@contextlib.contextmanager
def _fd_log(path: Path) -> Iterator[LogFn]:
    """Send this process's stdout/stderr (Blender's C-level chatter included) to the unit's log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    handle = open(path, "ab")  # noqa: SIM115 (closed below, after the fds are restored)
    try:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)

        def log(text: str) -> None:
            print(text, flush=True)

        yield log
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        handle.close()


@contextlib.contextmanager
def _file_log(path: Path) -> Iterator[LogFn]:
    """A per-unit log for units that run in a thread (file descriptors are shared between threads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        def log(text: str) -> None:
            handle.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            handle.flush()

        yield log


def run_unit(unit_data: dict[str, Any], out: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one unit; outputs + done-record on success. Returns its result (never raises for the unit)."""
    unit = Unit.from_dict(unit_data)
    root = Path(out)
    context = context or {}
    logger = _fd_log if unit.resource == "render" and context.get("fd_log", True) else _file_log
    started = time.perf_counter()
    with logger(log_path(root, unit)) as log:
        log(f"=== {unit.id} ({unit.kind}) hash {unit.hash[:16]} pid {os.getpid()}")
        try:
            extra = RUNNERS[unit.kind](unit, root, context, log) or {}
            seconds = time.perf_counter() - started
            run_pid = context.get("run_pid")  # set for workers that are not the run's children (Ray)
            if not parent_alive() or (run_pid is not None and not run_holds_folder(root, int(run_pid))):
                # the folder's lock died with the run: never record work there
                raise ParentGone("the batch process that started this worker is gone; no done-record written")
            write_done(root, unit, seconds, extra)
            log(f"=== done in {seconds:.2f} s")
            return {"id": unit.id, "status": "done", "seconds": seconds, "extra": extra, "pid": os.getpid()}
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a unit's failure, whatever it is, is reported, not raised
            log(traceback.format_exc())
            message = f"{type(exc).__name__}: {exc}".strip()
            return {"id": unit.id, "status": "failed", "error": message.splitlines()[0][:500] if message else "error",
                    "seconds": time.perf_counter() - started, "pid": os.getpid()}


# -- render units (bpy) -----------------------------------------------------------------------
def _render_package(unit: Unit, root: Path, context: dict, log: LogFn) -> dict[str, Any]:
    from profile_rig.blender.package_render import PackageOptions
    from profile_rig.blender.scene_session import prepare_scene

    c, p = unit.spec["character"], unit.spec["package"]
    session = prepare_scene(
        demo=Phenotype.from_dict(c["phenotype"]) if c["kind"] == "demo" else None,
        blend=c["blend"] if c["kind"] != "demo" else None,
        character=c.get("object"), head_bone=c.get("head_bone"),
        eye_bones=tuple(c["eye_bones"]) if c.get("eye_bones") else None, head_object=c.get("head_object"),
        **({"rig": c["rig"]} if c.get("rig") else {}))
    session.name = c["name"]
    options = PackageOptions(views=[ViewSpec(*v) for v in p["views"]], resolution=tuple(p["resolution"]),
                             preset=RenderPreset(**p["preset"]), studio=p["studio"], hdri_path=p["hdri"],
                             framing=Framing(face_fill=p["face_fill"]), lens_mm=p["lens"], overwrite=True,
                             threads=_RENDER_THREADS, pose=Pose.from_dict(p.get("pose") or {}),
                             expressions=tuple(p.get("expressions", ())), pose_views=p.get("pose_views", True))

    def progress(index: int, total: int, name: str, seconds: float) -> None:
        log(f"view {index}/{total} {name}: {seconds:.2f} s")

    result = session.render(root / unit.spec["out"], options, progress)
    return {"views": {k: round(v, 3) for k, v in result.seconds_per_view.items()}, "head": session.found.method}


def _render_shot(unit: Unit, root: Path, context: dict, log: LogFn) -> dict[str, Any]:
    import bpy

    from profile_rig.blender.studio import apply_render_settings, apply_threads

    spec = unit.spec
    bpy.ops.wm.open_mainfile(filepath=spec["blend"], load_ui=False)
    scene = bpy.context.scene
    camera = bpy.data.objects.get(spec["camera"]) if spec["camera"] else scene.camera
    if camera is None or camera.type != "CAMERA":
        cameras = ", ".join(o.name for o in bpy.data.objects if o.type == "CAMERA") or "none"
        raise RuntimeError(f"no camera {spec['camera'] or '(scene camera)'} in {spec['blend']}; cameras: {cameras}")
    scene.camera = camera
    if spec["frame"] is not None:
        scene.frame_set(spec["frame"])
    render = spec["render"]
    width, height = render.get("resolution") or _render_size(scene)
    if render.get("preset"):
        apply_render_settings(scene, RenderPreset(**render["preset"]), width, height)
    else:
        scene.render.resolution_x, scene.render.resolution_y = width, height
        scene.render.resolution_percentage = 100
    apply_threads(scene, _RENDER_THREADS)
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.use_file_extension = False
    image = root / spec["image"]
    image.parent.mkdir(parents=True, exist_ok=True)
    tmp = image.with_name(f".{image.name}.tmp")
    scene.render.filepath = str(tmp)
    log(f"rendering {camera.name} frame {scene.frame_current} at {width}x{height}")
    bpy.ops.render.render(write_still=True, scene=scene.name)
    if not tmp.is_file():
        raise RuntimeError("Blender wrote no image; check the log above")
    sidecar, notes = _shot_sidecar(scene, camera, spec["character"], image.name, (width, height))
    for note in notes:
        log(f"sidecar: {note}")
    write_atomic(root / spec["sidecar"], sidecar.dumps().encode())
    os.replace(tmp, image)
    return {"faces": len(sidecar.faces), "notes": notes}


def _render_size(scene: Any) -> tuple[int, int]:
    r = scene.render
    return max(1, int(r.resolution_x * r.resolution_percentage / 100)), max(1, int(r.resolution_y * r.resolution_percentage / 100))


def _shot_sidecar(scene: Any, camera: Any, character: dict[str, Any], image_name: str, size: tuple[int, int]):
    """Face geometry of the character in this shot, projected by the same maths as the package."""
    from profile_rig.blender.shot_sidecar import (
        ShotCharacter,
        ShotError,
        build_sidecar,
        camera_intrinsics,
        camera_matrix,
    )

    try:
        camera_intrinsics(scene, camera)
    except ShotError as exc:
        matrix = camera_matrix(camera)
        data = camera.data
        record = Intrinsics(width=size[0], height=size[1]).record(matrix, (data.clip_start, data.clip_end))
        empty = RenderSidecar(width=size[0], height=size[1], faces=(), camera=record, image=image_name,
                              extra={"scene": scene.name, "camera": camera.name, "frame": scene.frame_current})
        return empty, [f"{exc}: no face geometry, the backend detects faces"]
    eyes = tuple(character["eye_bones"]) if character.get("eye_bones") else None
    shot = ShotCharacter(object_name=character.get("object"), character_id=character_id_from_name(character["name"]),
                         character_name=character["name"], head_bone=character.get("head_bone"), eye_bones=eyes)
    return build_sidecar(scene, camera, [shot], image_name)


# -- bump units (HTTP) ------------------------------------------------------------------------
def _view_sidecar(package: Path, view_name: str):
    """The package view's own face geometry as a sidecar: the backend needs no detector for it."""

    manifest = load_package(package)
    view = manifest.view(view_name)
    faces = ()
    if view.face is not None:
        faces = (SidecarFace(manifest.character_id, manifest.character_name, view.face),)
    return package / view.file, RenderSidecar(width=view.width, height=view.height, faces=faces, camera=view.camera,
                                              image=view.file, extra={"package_view": view.name})


def _submit_and_wait(unit: Unit, context: dict, log: LogFn, submit: Callable[[str], Any], what: str) -> Any:
    """Submit under the unit's client key and wait for the job to finish; the final status.

    A repeated client_key returns that key's job, so a job left failed, cancelled or pruned by an
    earlier run gets a new key (up to 8 tries) instead of being returned again.
    """
    client: BumpClient = context["client"]
    for attempt in range(8):
        key = f"batch-{unit.hash[:40]}{context.get('salt', '')}" + (f"-r{attempt}" if attempt else "")
        job = submit(key)
        log(f"backend {client.url}: {what} {job.id} ({job.state}, queue position {job.queue_position})")
        if job.state in (FAILED, CANCELLED) or job.pruned:
            log(f"job {job.id} is from an earlier run and {job.state}{' (pruned)' if job.pruned else ''}; new job")
            continue
        final = client.wait(job.id, _stop_check(context.get("stop")), timeout=context.get("timeout", 3600.0),
                            poll_interval=0.2)
        if final.state != DONE:
            raise JobFailed(final)
        return final
    raise BackendError(f"{unit.id}: every earlier job for these settings failed; see the server log")


def _bump(unit: Unit, root: Path, context: dict, log: LogFn) -> dict[str, Any]:
    spec = unit.spec
    package = root / spec["package"]
    if unit.kind == "bump_view":
        image, sidecar = _view_sidecar(package, spec["view"])
        sidecar_arg: Any = sidecar
    else:
        image, sidecar_arg = root / spec["image_in"], root / spec["sidecar"]
    client: BumpClient = context["client"]

    def submit(key: str) -> Any:
        return client.submit(image, spec["params"], sidecar=sidecar_arg, package=package,
                             upload_package=context.get("upload_package", False), label=unit.id[:200], client_key=key)

    final = _submit_and_wait(unit, context, log, submit, "job")
    tmp = state_dir(root) / "tmp" / f"{unit.key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        result = client.download(final.id, tmp, kinds=("image", "mask", "record"), status=final)
        # Checked against the record contract before anything is moved into the output folder.
        record = replace(BumpRecord.from_dict(result.record),
                         batch={"unit": unit.id, "job_id": final.id, "backend": client.url, "timings": final.timings})
        for src, name in ((result.mask, "mask"),):
            if src is not None:
                (root / spec[name]).parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, root / spec[name])
        write_atomic(root / spec["record"], (record.dumps(indent=1) + "\n").encode())
        (root / spec["image"]).parent.mkdir(parents=True, exist_ok=True)
        os.replace(result.image, root / spec["image"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    scores = record.identity_scores
    log(f"downloaded {spec['image']} (seed {record.seed}, identity {scores or 'n/a'})")
    return {"job_id": final.id, "backend": client.url, "seed": record.seed, "identity_scores": scores,
            "gpu_seconds": final.timings.get("generate_s")}


def _bump_sequence(unit: Unit, root: Path, context: dict, log: LogFn) -> dict[str, Any]:
    """A shot's rendered frames (with their sidecars) bumped as ONE sequence job on the backend.

    The frames are linked into a numbered folder (``frame_0001.png`` + ``frame_0001.json``, what the
    sequence job reads) that the backend reads by path (it must see this output folder: same
    machine or a shared disk), or, with ``upload_package``, that is uploaded as one ZIP. Its files
    land in ``spec["out"]``: ``frames/``, ``sequence.json``, ``sequence.mp4``, ``before_after.png``,
    all at once (staged, then renamed).
    """
    spec = unit.spec
    client: BumpClient = context["client"]
    staging = state_dir(root) / "tmp" / f"{unit.key}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    frames_dir = root / STATE_DIR / "sequences" / unit.key  # stays while the job runs: the backend reads it
    shutil.rmtree(frames_dir, ignore_errors=True)
    frames_dir.mkdir(parents=True)
    for i, frame in enumerate(spec["frames"], start=1):
        for src, suffix in ((root / frame["image"], ".png"), (root / frame["sidecar"], ".json")):
            target = frames_dir / f"frame_{frame['frame'] if frame['frame'] is not None else i:04d}{suffix}"
            try:
                os.link(src, target)
            except OSError:
                shutil.copyfile(src, target)
    try:
        def submit(key: str) -> Any:
            return client.submit_sequence(frames=frames_dir, params=spec["params"], sequence=spec["sequence"],
                                          package=root / spec["package"],
                                          upload_package=context.get("upload_package", False),
                                          upload_frames=context.get("upload_package", False), label=unit.id[:200],
                                          client_key=key)

        final = _submit_and_wait(unit, context, log, submit, f"sequence job ({len(spec['frames'])} frames)")
        result = client.download(final.id, staging / "download", status=final)
        out = staging / "out"
        (out / "frames").mkdir(parents=True)
        with zipfile.ZipFile(result.files["frames.zip"]) as archive:
            for name in archive.namelist():  # one frame at a time
                with archive.open(name) as src, open(out / "frames" / Path(name).name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        for name in ("sequence.json", "sequence.mp4", "before_after.png"):
            if name in result.files:
                os.replace(result.files[name], out / name)
        target = root / spec["out"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(out, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(frames_dir, ignore_errors=True)
    tracks = result.record.get("tracks", [])
    log(f"downloaded {spec['out']}: {len(spec['frames'])} frames, {len(tracks)} track(s)")
    return {"job_id": final.id, "backend": client.url, "frames": len(spec["frames"]),
            "faces_bumped": sum(t.get("bumped", 0) for t in tracks), "gpu_seconds": final.timings.get("generate_s")}


class StopRequested(Exception):
    """The run is being interrupted: stop waiting (the backend job goes on; a resume picks it up)."""


def _stop_check(stop: Any) -> Callable[[Any], None] | None:
    if stop is None:
        return None

    def check(_status: Any) -> None:
        if stop.is_set():
            raise StopRequested("the run was interrupted; run it again to pick this job up")

    return check


# -- local units --------------------------------------------------------------------------------
def _assemble(unit: Unit, root: Path, context: dict, log: LogFn) -> dict[str, Any]:
    """The bumped views as a package of their own (origin 'bumped'), ready for the library."""
    from dataclasses import replace


    spec = unit.spec
    source = load_package(root / spec["package"])
    views, images = [], []
    with PackageStaging(root / spec["out"], overwrite=True) as staging:
        for view in source.views:
            bumped = root / spec["views"][view.name]
            shutil.copyfile(bumped, staging.path / view.file)
            image = read_png(staging.path / view.file)
            views.append(replace(view, width=int(image.shape[1]), height=int(image.shape[0])))
            images.append(_rgb8(image))
        manifest = replace(source.with_views(views), origin="bumped",
                           notes=f"bumped by a batch run from {spec['package']}")
        staging.commit(manifest, images, [v.name for v in views])
    log(f"bumped package with {len(views)} views")
    return {"views": len(views)}


def _rgb8(image: Any) -> Any:
    import numpy as np

    if image.dtype != np.uint8:
        image = (image.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


RUNNERS: dict[str, Callable[[Unit, Path, dict, LogFn], dict[str, Any] | None]] = {
    "package": _render_package,
    "shot": _render_shot,
    "bump_view": _bump,
    "bump_shot": _bump,
    "bump_sequence": _bump_sequence,
    "assemble": _assemble,
}

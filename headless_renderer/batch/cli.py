"""``python -m headless_renderer batch JOB.toml`` (also ``blender -b -P headless_renderer/blender_entry.py
-- batch JOB.toml`` and ``python -m headless_renderer.batch JOB.toml``).

Registered in ``headless_renderer/cli.py`` (``build_parser``) with::

    from headless_renderer.batch.cli import add_parser as add_batch_parser
    add_batch_parser(subparsers)

Exit codes: 0 every unit done, 1 some unit failed (listed with why and its log), 2 bad job file
or options (every problem listed), 130 interrupted (finished units stay done; run again to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import Any

from bump_contracts.cli_errors import CliParser

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Render profile packages, bump them on the backend(s), and render and bump shots, for many
characters from one TOML job file (see docs/batch.md for its fields).

Resumable: run the same command again after a failure or Ctrl-C and finished units are
skipped; a changed setting redoes only the units it affects (--dry-run shows which, and why)."""

EPILOG = """\
examples:
  python -m headless_renderer batch job.toml --dry-run      # check the file, list what would run
  python -m headless_renderer batch job.toml --workers 2    # two render processes
  python -m headless_renderer batch job.toml --only mateo,nadia --no-resume

exit codes: 0 all done; 1 some unit failed (listed with why and its log); 2 the job file or
options are wrong (every problem listed, nothing rendered); 130 interrupted (run again to resume)."""


def options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("job", metavar="JOB.toml", help="the job file")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="render processes (default: one per CPU core; 0 renders in this process); "
                        "with --executor ray and no --ray-address, the local cluster's CPUs")
    p.add_argument("--dry-run", action="store_true", help="check the job and show what would run, render nothing")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip units already done with the same inputs and settings (default); --no-resume redoes all")
    p.add_argument("--only", action="append", metavar="NAME", help="only these characters (repeatable or a,b)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="local process pool (default) or Ray")
    p.add_argument("--ray-address", metavar="ADDR", default=None,
                   help="Ray cluster to join (e.g. auto or ray://head:10001); default: start a local one")
    p.add_argument("--no-overlap", action="store_true",
                   help="bump only after every render is done (to measure what the overlap saves)")
    p.add_argument("--render-threads", type=int, default=None, metavar="N",
                   help="Cycles threads per render (default: the cores split between workers; Ray: 2)")
    p.add_argument("--json", action="store_true", help="print the report summary as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress display (failures and the summary still print)")
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch", help="many characters, packages and shots from one TOML job file (resumable)",
        description=DESCRIPTION, epilog=EPILOG)
    options(p)
    p.set_defaults(handler=run)
    return p


def _only(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def run(args: argparse.Namespace, *, in_blender: bool = False) -> int:
    from headless_renderer.batch.jobfile import JobFileError, load_job
    from headless_renderer.batch.units import build_plan

    if args.workers is not None and args.workers < 0:
        print("error: --workers must be 0 or more", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        job = load_job(args.job, only=_only(args.only))
        model = _backend_model(job, args)
        plan = build_plan(job, model)
    except JobFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.dry_run:
        return _dry_run(plan, args)
    return _execute(plan, args, in_blender)


def _backend_model(job, args) -> dict[str, Any] | None:
    """The backends' model identity for the bump units' hashes (a dry run does not wait for a load)."""
    from headless_renderer.batch import backend_model

    if not job.needs_backend() or not job.backends:
        return None

    def note(text: str) -> None:  # rare and about what gets re-run: printed even with --quiet
        print(f"[batch] {text}", file=sys.stderr)

    identity, told = backend_model.resolve(job, wait_s=0.0 if args.dry_run else backend_model.READY_WAIT_S,
                                           note=note)
    args.backend_model_told = told
    return identity


def _reasons(plan, resume: bool) -> dict[str, str]:
    """Why each unit runs (new, settings changed, outputs missing) or 'done' when it is skipped."""
    from headless_renderer.batch.units import read_done

    out = {}
    for uid, unit in plan.units.items():
        record = read_done(plan.out, unit)
        if not resume:
            out[uid] = "--no-resume"
        elif record is None:
            out[uid] = "new"
        elif record.get("hash") != unit.hash:
            out[uid] = "settings or inputs changed"
        elif not all((plan.out / rel).exists() for rel in unit.outputs):
            out[uid] = "outputs missing"
        else:
            out[uid] = "done"
    return out


def _dry_run(plan, args) -> int:
    reasons = _reasons(plan, args.resume)
    runs = [uid for uid, r in reasons.items() if r != "done"]
    if args.json:
        print(json.dumps({"output": str(plan.out), "units": [{"id": uid, "kind": plan.units[uid].kind,
                          "hash": plan.units[uid].hash[:16], "action": "skip" if r == "done" else "run", "why": r}
                         for uid, r in reasons.items()]}, indent=1))
    else:
        for uid, reason in reasons.items():
            action = "skip" if reason == "done" else "run "
            print(f"{action} {uid:60s} {plan.units[uid].kind:9s} {reason}")
        print(f"{len(plan.units)} units, {len(runs)} to run, {len(plan.units) - len(runs)} already done; "
              f"output: {plan.out}")
    return EXIT_OK


def _execute(plan, args, in_blender: bool) -> int:
    from headless_renderer.batch.local import Backends, LocalExecutor, RunOptions, bpy_worker_available, state_lock
    from headless_renderer.batch.progress import Progress
    from headless_renderer.batch.report import print_summary, write_report
    from headless_renderer.batch.units import BUMP, clean_stale, state_dir

    plan.out.mkdir(parents=True, exist_ok=True)
    lock = state_lock(plan.out)
    if lock is None:
        print(f"error: another batch run is using {plan.out} (see {plan.out / '.batch' / 'lock'})", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        clean_stale(plan.out)
        if plan.model is not None and getattr(args, "backend_model_told", False):
            from headless_renderer.batch import backend_model

            backend_model.save(plan.out, plan.model)
        import shutil

        shutil.rmtree(state_dir(plan.out) / "tmp", ignore_errors=True)
        reasons = _reasons(plan, args.resume)
        skipped = {uid for uid, r in reasons.items() if r == "done"}
        todo = [uid for uid in plan.units if uid not in skipped]
        workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
        notes: list[str] = []
        if in_blender and workers > 0 and args.executor == "local" and any(
                plan.units[u].resource == "render" for u in todo) and not bpy_worker_available():
            notes.append("render workers need the bpy module in Blender's Python (pip install bpy there); "
                         "rendering in this Blender process instead")
            workers = 0
        run_options = RunOptions(workers=workers, overlap=not args.no_overlap,
                                 salt="" if args.resume else f"-{uuid.uuid4().hex[:8]}",
                                 render_threads=args.render_threads)
        context: dict[str, Any] = {"timeout": plan.job.timeout, "upload_package": plan.job.upload_package,
                                   "salt": run_options.salt}
        progress = Progress(len(plan.units), len(skipped), quiet=args.quiet)
        for note in notes:
            progress._emit(f"[batch] {note}", own_line=True)
        progress._emit(f"[batch] {len(plan.units)} units, {len(todo)} to run, {len(skipped)} already done "
                       f"({args.executor}, {workers} render worker(s)); output {plan.out}", own_line=True)
        started = time.time()
        results: dict[str, dict[str, Any]] = {}
        _sigterm_as_interrupt()
        interrupted = False
        try:
            if todo and args.executor == "ray":
                from headless_renderer.batch.ray_executor import RayUnavailable, run_on_ray

                try:
                    run_on_ray(plan, todo, run_options, progress, context, address=args.ray_address, results=results)
                except RayUnavailable as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return EXIT_BAD_INPUT
            elif todo:
                backends = None
                if any(plan.units[u].resource == BUMP for u in todo):
                    backends = Backends(plan.job.backends, plan.job.token)
                    for note in backends.check():
                        progress._emit(f"[batch] {note}", own_line=True)
                executor = LocalExecutor(plan, run_options, progress, backends, context)
                results = executor.results
                executor.run(todo)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.close()
        library = _sync_library(plan)
        report = write_report(plan, results, skipped, {
            "executor": args.executor, "workers": workers, "overlap": not args.no_overlap, "resume": args.resume,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "seconds": round(time.time() - started, 3), "interrupted": interrupted,
            "backend_model": plan.model, "library": library})
        print_summary(report, sys.stderr)
        if args.json:
            print(json.dumps({k: report[k] for k in ("output", "counts", "ok", "failures", "seconds")}))
        if interrupted:
            print("[batch] interrupted: finished units are kept; run the same command again to resume",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        return EXIT_OK if report["ok"] else EXIT_FAILED
    finally:
        lock.close()


def _sync_library(plan) -> dict[str, Any] | None:
    """Finished packages and bumps into the job's library (a second Ctrl-C skips it; the next run catches up)."""
    from headless_renderer.batch.library_sync import sync_library

    try:
        return sync_library(plan)
    except KeyboardInterrupt:
        return {"library": plan.job.library, "problems": ["interrupted before the library was updated; "
                                                          "the next run records what is finished"]}


def _sigterm_as_interrupt() -> None:
    """A farm or service manager stops a run with SIGTERM: treat it like Ctrl-C (workers stopped,
    report written, finished units kept) instead of dying with render workers left behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def build_parser() -> CliParser:
    """The standalone ``python -m headless_renderer.batch`` command line."""
    return options(CliParser(prog="python -m headless_renderer.batch", description=DESCRIPTION, epilog=EPILOG))


def main(argv: list[str] | None = None, *, in_blender: bool = False) -> int:
    return run(build_parser().parse_args(argv), in_blender=in_blender)

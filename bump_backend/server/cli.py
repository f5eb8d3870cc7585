"""``python -m bump_backend serve``: run the job server under uvicorn (console script: ``main``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bump_backend.generate.model_args import add_model_options, model_name, spec_from_args
from bump_contracts.bump_job import DEFAULT_HOST, DEFAULT_PORT

LOG_LEVELS = ("debug", "info", "warning", "error")


def _options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1; any other needs --token)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--token", default=os.environ.get("BUMP_BACKEND_TOKEN"),
                        help="require 'Authorization: Bearer TOKEN' on every request but health "
                             "(default: $BUMP_BACKEND_TOKEN)")
    parser.add_argument("--data-dir", default=str(Path.home() / ".bump_backend"),
                        help="jobs, inputs and results live here (survives restarts)")
    parser.add_argument("--library", default=None, help="character library folder (resolves package ids)")
    parser.add_argument("--package-root", action="append", default=[],
                        help="only read package paths under this folder (repeatable)")
    parser.add_argument("--max-queue", type=int, default=256, help="jobs waiting before 429")
    parser.add_argument("--max-request-mb", type=float, default=256.0)
    parser.add_argument("--max-megapixels", type=float, default=40.0, help="input image pixel cap (from the header)")
    parser.add_argument("--keep-days", type=float, default=7.0, help="keep fetched results this long")
    parser.add_argument("--keep-unfetched-days", type=float, default=30.0, help="keep never-fetched results this long")
    parser.add_argument("--max-store-gb", type=float, default=20.0, help="prune fetched jobs above this size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    return add_model_options(parser)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="run the local job server (HTTP)", description=__doc__)
    return _options(parser)


def config_from_args(args: argparse.Namespace):
    from bump_backend.server.config import MB, Limits, Retention, ServerConfig

    day = 24 * 3600.0
    return ServerConfig(
        host=args.host, port=args.port, token=args.token or None, data_dir=Path(args.data_dir).expanduser(),
        model=spec_from_args(args), model_name=model_name(args.model), device=args.device, max_queue=args.max_queue,
        library=Path(args.library).expanduser() if args.library else None,
        package_roots=tuple(Path(p).expanduser() for p in args.package_root),
        limits=Limits(max_request_bytes=int(args.max_request_mb * MB), max_pixels=int(args.max_megapixels * 1e6)),
        retention=Retention(keep_s=args.keep_days * day, keep_unfetched_s=args.keep_unfetched_days * day,
                            max_bytes=int(args.max_store_gb * 1024 * MB)),
        log_level=args.log_level)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config.check()  # refuse a public bind without a token before anything loads
    setup_logging(config.log_level)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import uvicorn

    from bump_backend.server.app import create_app
    from bump_backend.server.serving import uvicorn_config

    uvicorn.Server(uvicorn_config(create_app(config), config, timeout_graceful_shutdown=30)).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script entry: ``bump-backend [serve] [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    parser = _options(argparse.ArgumentParser(prog="bump-backend", description=__doc__))
    try:
        return run(parser.parse_args(argv))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

"""Every command line has one shape: a usage mistake is one `error:` line plus a --help hint, exit 2."""

from __future__ import annotations

import argparse

import pytest

from bump_contracts.cli_errors import CliParser


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from addon.build import build_parser as addon_parser
    from bump_backend import cli as backend_cli
    from headless_renderer.batch.cli import build_parser as batch_parser
    from headless_renderer.cli import build_parser as renderer_parser

    return {"headless_renderer": renderer_parser(), "bump_backend": backend_cli.build_parser(backend_cli.commands()),
            "addon.build": addon_parser(), "headless_renderer.batch": batch_parser()}


@pytest.mark.parametrize("module,argv,says", [
    ("headless_renderer", ["package", "--demo", "--out", "x", "--samplez", "3"], "unrecognized arguments: --samplez 3"),
    ("headless_renderer", ["package", "--demo", "--out", "x", "--lens", "long"], "argument --lens: invalid float value"),
    ("headless_renderer", ["library", "create"], "the following arguments are required: name"),
    ("headless_renderer", ["library", "trash", "burn"], "argument action: invalid choice: 'burn'"),
    ("headless_renderer", ["render"], "argument command: invalid choice: 'render'"),
    ("bump_backend", ["serve", "--port", "many"], "argument --port: invalid int value"),
    ("bump_backend", ["faces", "detect"], "required"),
    ("addon.build", ["--outdir", "d"], "unrecognized arguments: --outdir d"),
    ("headless_renderer.batch", ["job.toml", "--executor", "slurm"], "invalid choice: 'slurm'"),
])
def test_usage_mistake_is_one_error_line(capsys, module, argv, says) -> None:
    parser = _parsers()[module]
    assert isinstance(parser, CliParser)
    with pytest.raises(SystemExit) as done:
        parser.parse_args(argv)
    lines = capsys.readouterr().err.splitlines()
    assert done.value.code == 2
    assert len(lines) == 2 and lines[0].startswith(f"error: python -m {module}") and says in lines[0], lines
    assert lines[1].startswith("see 'python -m ") and lines[1].endswith(" --help'")


def test_help_still_shows_the_usage(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        _parsers()["bump_backend"].parse_args(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and text.startswith("usage: python -m bump_backend") and "examples:" in text

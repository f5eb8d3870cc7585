"""Every fenced ```bash/```sh/```python block in README.md and docs/*.md works as written.

A block is run, scaled down, in one shared scratch folder (HOME points inside it, so
``~/BumpStudio/library`` is a fresh library), unless the line directly above its fence (or one of
the comment lines stacked there) is ``<!-- docs: not-run: <reason> -->``: then each ``python -m``
command line (and the arguments ``blender ... -P headless_renderer/blender_entry.py -- ...`` passes
on) must be accepted by the real argument parser, each script it names must exist, and a Python
snippet must compile. A block that is not marked and cannot run here fails, naming its file and line.

What runs is what the doc says, except for the substitutions in ``SUBSTITUTIONS`` (smaller renders)
and ``pip install``, which is not re-run: the extras and files it names are checked instead.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from docs_helpers import REPO, doc_env, python_module, run_documented, substitute

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LANGS = {"bash": "shell", "sh": "shell", "python": "python"}
MARKER = re.compile(r"<!--\s*docs:\s*not-run:\s*(?P<reason>.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
TIMEOUT_S = 180



@dataclass(frozen=True)
class Block:
    file: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    not_run: str | None  # the marker's reason

    @property
    def where(self) -> str:
        name = self.file.relative_to(REPO) if self.file.is_relative_to(REPO) else self.file
        return f"{name}:{self.line}"


def extract_blocks(path: Path) -> list[Block]:
    """The fenced bash/sh/python blocks of one Markdown file, with their not-run markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, lang, start = match["indent"], match["lang"], i
        end = start + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang in LANGS:
            body = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip()
                             for line in lines[start + 1 : end])
            blocks.append(Block(path, start + 1, lang, body + "\n", _marker(lines, start)))
        i = end + 1
    return blocks


def _marker(lines: list[str], fence: int) -> str | None:
    """The not-run reason from the HTML comment lines stacked directly above the fence."""
    j = fence - 1
    while j >= 0 and lines[j].strip().startswith("<!--"):
        found = MARKER.search(lines[j])
        if found:
            return found["reason"]
        j -= 1
    return None


ALL_BLOCKS = [block for path in DOC_FILES for block in extract_blocks(path)]


# --- shell blocks: commands ----------------------------------------------------------------------

def shell_commands(text: str) -> list[list[str]]:
    """Split a bash block into commands (``\\`` continuations, ``&&`` and ``;``, ``#`` comments)."""
    text = re.sub(r"\\\n", " ", text)
    commands: list[list[str]] = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in ("&&", ";"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
        if current:
            commands.append(current)
    return commands


def _parser(module: str):
    """The real argument parser behind ``python -m MODULE``."""
    if module == "headless_renderer":
        from headless_renderer.cli import build_parser

        return build_parser()
    if module == "headless_renderer.batch":
        from headless_renderer.batch.cli import build_parser

        return build_parser()
    if module == "bump_backend":
        from bump_backend import cli

        return cli.build_parser(cli.commands())
    if module == "addon.build":
        from addon.build import build_parser

        return build_parser()
    return None


def check_parses(module: str, args: list[str]) -> str | None:
    """None when the real parser accepts ``args``, else what it said."""
    parser = _parser(module)
    if parser is None:
        return f"no argument parser known for 'python -m {module}' (add it to _parser in this test)"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return err.getvalue().strip() or f"exit {exc.code}"
    return None


def check_pip(argv: list[str]) -> str | None:
    """``pip install`` is not re-run: the extras and requirement files it names must exist."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for i, arg in enumerate(argv):
        found = re.fullmatch(r"\.\[(?P<names>[\w,-]+)\]", arg)
        if found:
            missing = [n for n in found["names"].split(",") if n not in extras]
            if missing:
                return f"pyproject.toml has no extra(s) {missing}"
        if arg == "-r" and not (REPO / argv[i + 1]).is_file():
            return f"requirements file {argv[i + 1]} does not exist"
    return None


def check_command(argv: list[str]) -> str | None:
    """Checks for a command of a not-run block (the parser's verdict, or that a script exists)."""
    if argv[:4] == ["python", "-m", "pip", "install"]:
        return check_pip(argv[4:])
    if argv[:2] == ["pip", "install"]:
        return check_pip(argv[2:])
    found = python_module(argv)
    if found:
        module, args = found
        return None if module == "pytest" else check_parses(module, args)
    if argv[0] in ("python", "python3") and len(argv) > 1 and argv[1].endswith(".py"):
        return None if (REPO / argv[1]).is_file() else f"script {argv[1]} does not exist"
    if argv[0] == "blender" and "--" in argv and any(a.endswith("blender_entry.py") for a in argv):
        return check_parses("headless_renderer", argv[argv.index("--") + 1 :])
    return None  # another program (ray, blender without our entry point): nothing of ours to check


# --- running ---------------------------------------------------------------------------------

def run_shell_block(block: Block, root: Path) -> None:
    for argv in shell_commands(block.text):
        shown = shlex.join(argv)
        if argv[:2] == ["pip", "install"]:
            problem = check_pip(argv[2:])
            assert problem is None, f"{block.where}: `{shown}`: {problem}"
            continue
        found = python_module(argv)
        assert found is not None and found[0] != "pytest", (
            f"{block.where}: `{shown}` cannot run in the docs test; give the block a line "
            f"'<!-- docs: not-run: <reason> -->' directly above its fence, or make it runnable")
        done = run_documented(argv, root)
        assert done.returncode == 0, (
            f"{block.where}: `{shown}` exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")


def run_python_block(block: Block, root: Path) -> None:
    script = root / f"snippet_{block.file.stem}_{block.line}.py"
    script.write_text(block.text, encoding="utf-8")
    done = subprocess.run([sys.executable, script.name], cwd=root, env=doc_env(root), capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, (
        f"{block.where}: the Python snippet failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")


# --- the tests -------------------------------------------------------------------------------

def test_the_docs_have_blocks_and_every_marker_gives_a_reason() -> None:
    assert len(ALL_BLOCKS) >= 10, [b.where for b in ALL_BLOCKS]
    assert any(b.not_run is None for b in ALL_BLOCKS)
    empty = [b.where for b in ALL_BLOCKS if b.not_run is not None and not b.not_run]
    assert not empty, f"not-run markers without a reason: {empty}"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.not_run is not None], ids=lambda b: b.where)
def test_not_run_block_is_checked(block: Block) -> None:
    if block.lang == "python":
        try:
            compile(block.text, block.where, "exec")
        except SyntaxError as exc:
            pytest.fail(f"{block.where}: the Python snippet does not compile: {exc}")
        return
    for argv in shell_commands(block.text):
        problem = check_command(argv)
        assert problem is None, f"{block.where}: `{shlex.join(argv)}` is refused: {problem}"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.not_run is None], ids=lambda b: b.where)
def test_block_runs_as_written(block: Block, workspace: Path) -> None:
    if block.lang == "python":
        run_python_block(block, workspace)
    else:
        run_shell_block(block, workspace)


# --- the checker itself: it must fail where a doc is wrong ---------------------------------------

def test_checker_names_file_line_and_reason(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n\n<!-- docs: not-run: needs a GPU -->\n```bash\n"
                   "python -m headless_renderer package --demo --out x --no-such-flag\n```\n\n"
                   "```sh\nray start --head\n```\n\n```python\nprint(1\n```\n\n```text\nnot a block\n```\n",
                   encoding="utf-8")
    marked, unmarked, snippet = extract_blocks(doc)
    assert (marked.line, marked.not_run, unmarked.not_run, snippet.lang) == (4, "needs a GPU", None, "python")
    problem = check_command(shell_commands(marked.text)[0])
    assert problem and "unrecognized arguments: --no-such-flag" in problem and problem.startswith("error:")
    with pytest.raises(AssertionError, match=r"doc\.md:8: `ray start --head` cannot run in the docs test"):
        run_shell_block(unmarked, tmp_path)
    with pytest.raises(SyntaxError):
        compile(snippet.text, snippet.where, "exec")


def test_shell_commands_split_like_bash() -> None:
    text = 'pip install -e ".[dev]" && python -m x --a "b c" \\\n    --d   # comment\n\n# only a comment\npython -m y; python -m z\n'
    assert shell_commands(text) == [["pip", "install", "-e", ".[dev]"], ["python", "-m", "x", "--a", "b c", "--d"],
                                    ["python", "-m", "y"], ["python", "-m", "z"]]
    assert check_pip(["-e", ".[blender,nope]"]) == "pyproject.toml has no extra(s) ['nope']"
    assert substitute("headless_renderer", ["package", "--resolution", "720"]) == \
        ["package", "--resolution", "96", "--samples", "1"]

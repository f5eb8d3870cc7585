"""Doc statements that are not shell blocks, held to the code: the batch example job file, the
batch state file names, the server's refusal codes, the console scripts."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from docs_helpers import REPO, doc_env, run_documented

from bump_backend import cli as backend_cli
from headless_renderer.batch.units import unit_key


def _fenced(doc: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", (REPO / doc).read_text(encoding="utf-8"), re.S | re.M)


def test_batch_md_example_job_file_is_accepted(workspace: Path) -> None:
    """docs/batch.md's job file, with what its text says it needs, passes the batch's own check."""
    root = workspace / "batch_example"
    (root / "chars").mkdir(parents=True)
    (root / "scenes").mkdir()
    (root / "chars" / "hero.blend").write_bytes(b"")  # a dry run reads no .blend
    (root / "scenes" / "street.blend").write_bytes(b"")
    (root / "job.toml").write_text(_fenced("docs/batch.md", "toml")[0], encoding="utf-8")
    for argv in (["library", "create", "Nadia"], ["library", "add-package", "Nadia", "../out/demo_package"]):
        done = run_documented(["python", "-m", "headless_renderer", *argv], root)
        assert done.returncode == 0, done.stderr
    done = run_documented(["python", "-m", "headless_renderer", "batch", "job.toml", "--dry-run"], root)
    assert done.returncode == 0, f"docs/batch.md's job file is refused:\n{done.stdout}{done.stderr}"
    units = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("run ")}
    assert {"mateo/package", "hero/package", "nadia/bump/front", "hero/bump_shot/street/CamClose/f0040"} <= units
    assert "nadia/package" not in units  # a library character's package is used as it is


def test_batch_md_names_state_files_like_the_code() -> None:
    text = (REPO / "docs" / "batch.md").read_text(encoding="utf-8")
    assert f"output/.batch/done/{unit_key('mateo/bump/front')}.json" in text
    assert f"output/.batch/logs/{unit_key('mateo/package')}.log" in text


def test_server_md_lists_every_refusal() -> None:
    """Each (status, code) the server refuses with is in docs/server.md."""
    raised = set()
    for path in (REPO / "bump_backend" / "server").glob("*.py"):
        raised |= set(re.findall(r'Rejected\(\s*(\d{3}),\s*"(\w+)"', path.read_text(encoding="utf-8")))
    text = (REPO / "docs" / "server.md").read_text(encoding="utf-8")
    assert ("403", "package_outside_roots") in raised
    missing = sorted(status for status, code in raised if f"`{status}`" not in text)
    assert not missing, f"docs/server.md does not mention refusal status(es) {missing}"
    assert "`package_outside_roots`" in text


def test_bump_backend_console_script_is_the_full_command() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["bump-backend"].partition(":")
    assert (module, name) == (backend_cli.__name__, backend_cli.main.__name__)
    assert set(backend_cli.SUBCOMMANDS) >= {"serve", "bump", "faces"}


GENERATE_PRELUDE = '''\
import torch

from bump_backend.generate.models import ModelSpec
from bump_backend.testing import tiny_models as tiny

torch.set_num_threads(1)
_sd15 = tiny.build_tiny_sd15("models/sd15")
_ip, _weight = tiny.build_tiny_ip_adapter("models/ip", _sd15, "plus-face")
TINY = ModelSpec(base=str(_sd15), ip_adapter=str(_ip), ip_adapter_weight=_weight, device="cpu")
'''


# The only differences from the doc: the tiny model, and a small job (2 steps, 128 px face crops).
GENERATE_SUBSTITUTIONS = {
    'BumpEngine("sd15")': "BumpEngine(TINY)",
    "settings = BumpSettings(": "settings = BumpSettings(steps=2, face_size=128, max_side=256, ",
}


def test_generate_md_snippet_runs_with_a_tiny_model(workspace: Path) -> None:
    """docs/generate.md's snippet as written, with a tiny SD 1.5 + plus-face (real architectures,
    random weights) in place of "sd15", on a rendered shot whose sidecar has Mira's face."""
    from bump_contracts.package_manifest import load_package
    from bump_contracts.render_sidecar import RenderSidecar, SidecarFace

    root = workspace / "generate_example"
    root.mkdir()
    done = run_documented(["python", "-m", "headless_renderer", "package", "--demo", "--views", "front,profile_left",
                           "--out", "packages/marco"], root)
    assert done.returncode == 0, done.stderr
    done = run_documented(["python", "-m", "headless_renderer", "package", "--demo", "--phenotype", "demo_woman",
                           "--name", "Mira", "--views", "front,profile_left", "--out", "packages/mira"], root)
    assert done.returncode == 0, done.stderr
    view = load_package(root / "packages" / "mira").views[0]
    (root / "shot.png").write_bytes((root / "packages" / "mira" / view.file).read_bytes())
    sidecar = RenderSidecar(view.width, view.height, (SidecarFace("mira", "Mira", view.face),), image="shot.png")
    (root / "shot.json").write_text(sidecar.dumps(), encoding="utf-8")

    snippet = _fenced("docs/generate.md", "python")[0]
    for old, new in GENERATE_SUBSTITUTIONS.items():
        assert snippet.count(old) == 1, f"docs/generate.md's snippet no longer has {old!r} once"
        snippet = snippet.replace(old, new)
    script = root / "generate_snippet.py"
    script.write_text(GENERATE_PRELUDE + snippet, encoding="utf-8")
    done = subprocess.run([sys.executable, script.name], cwd=root, env=doc_env(workspace), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"docs/generate.md's snippet failed:\n{done.stderr[-3000:]}"
    assert (root / "out" / "bump.png").is_file() and (root / "out" / "bump.json").is_file()


def test_ci_finds_the_readme_test_command():
    """`.ci/run` runs the fenced block right after the `ci:test` marker: nothing may sit between them."""
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    pattern = re.search(r're\.search\(r"(.+?)", text', script).group(1)
    block = re.search(pattern, (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    assert block is not None, "README.md: the ci:test marker must sit directly above its fenced block"
    assert "pip install -e" in block.group(1) and "python -m pytest" in block.group(1)


def test_every_fence_opens_and_closes_where_it_should():
    """A fence opened with a language inside an open block means a fence was lost (the text between
    then renders as headings and escapes the docs test)."""
    problems = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        opened = None
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            match = re.match(r"^\s*```(\S*)", line)
            if not match:
                continue
            if opened is None:
                opened = number
            elif match.group(1):
                problems.append(f"{doc.name}:{number}: a ```{match.group(1)} fence inside the block opened at {opened}")
            else:
                opened = None
        if opened is not None:
            problems.append(f"{doc.name}:{opened}: fence never closed")
    assert not problems, "\n".join(problems)

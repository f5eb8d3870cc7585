"""``python -m bump_backend bump``: writes the result, face crops, mask and record; replays it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from bump_backend.cli import main
from bump_backend.generate import infotext


def test_bump_command_writes_everything_and_reproduces(spec, scene, package_dir, tmp_path, capsys):
    image, sidecar = scene
    shot = tmp_path / "shot.png"
    Image.fromarray(image).save(shot)
    side = tmp_path / "shot.json"
    side.write_text(sidecar.dumps())
    out = tmp_path / "out"
    args = [
        "bump", str(shot), "--package", str(package_dir), "--sidecar", str(side), "--out", str(out),
        "--model", spec.base, "--ip-adapter", spec.ip_adapter, "--ip-adapter-weight", spec.ip_adapter_weight,
        "--device", "cpu", "--prompt", "photo of (a man:1.2)", "--seed", "99", "--steps", "5", "--denoise", "0.5",
        "--sampler", "DPM++ 2M Karras", "--face-size", "64", "--face-denoise", "0.35",
        "--character-prompt", "astronaut=short brown hair", "--character-negative", "astronaut=hat",
    ]
    assert main(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["shot_bump.json", "shot_bump.png", "shot_bump_face0.png", "shot_bump_face0_input.png",
                     "shot_bump_mask.png"]
    params = infotext.parse_infotext(infotext.read_png_text(out / "shot_bump.png")["parameters"])
    assert params["Prompt"] == "photo of (a man:1.2)" and params["Seed"] == "99"
    assert params["Sampler"] == "DPM++ 2M Karras" and params["Face denoising strength"] == "0.35"
    record = json.loads((out / "shot_bump.json").read_text())
    assert record["package"]["id"] == "astronaut" and record["sidecar"]["faces"][0]["character_id"] == "astronaut"
    assert record["character_prompts"] == {"astronaut": {"prompt": "short brown hair", "negative_prompt": "hat"}}
    assert record["faces"][0]["prompt"] == "photo of (a man:1.2), short brown hair"
    assert record["faces"][0]["negative_prompt"].endswith(", hat")
    assert main(["bump", "--reproduce", str(out / "shot_bump.png"), "--out", str(tmp_path / "again")]) == 0
    assert "identical" in capsys.readouterr().out
    a = np.asarray(Image.open(out / "shot_bump.png"))
    b = np.asarray(Image.open(tmp_path / "again" / "reproduced.png"))
    assert np.array_equal(a, b)


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    code = main(["bump", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "none")])
    assert code == 2
    assert "not found at the local path" in capsys.readouterr().err


def test_malformed_character_options_fail_before_any_model_loads(tmp_path, capsys):
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    code = main(["bump", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "none"),
                 "--character-prompt", "no-equals-sign"])
    assert code == 2 and "CHARACTER_ID=TEXT" in capsys.readouterr().err


def _bad_inputs(tmp: Path, package: Path) -> dict[str, tuple[list[str], str]]:
    """What users gave (issue 18, item 8) -> (arguments, what the one error line must name)."""
    good = tmp / "shot.png"
    Image.new("RGB", (96, 64), (120, 90, 70)).save(good)
    cut = tmp / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:-200])
    empty_package = tmp / "no_manifest"
    empty_package.mkdir()
    (tmp / "taken").write_text("an existing file")
    out = ["--out", str(tmp / "out")]
    return {
        "missing image": ([str(tmp / "nope.png"), "--package", str(package), *out], "nope.png"),
        "package without package.json": ([str(good), "--package", str(empty_package), *out], "no_manifest"),
        "truncated PNG": ([str(cut), "--package", str(package), *out], "cut.png"),
        "--out is a file": ([str(good), "--package", str(package), "--out", str(tmp / "taken")], "taken"),
        "--character-package folder missing": (
            [str(good), "--package", str(package), "--character-package", f"mira={tmp / 'gone'}", *out], "gone"),
        "--steps out of range": ([str(good), "--package", str(package), "--steps", "0", *out], "--steps"),
    }


def test_every_bad_input_is_one_line_before_anything_loads(tmp_path, package_dir):
    """Each case in a fresh interpreter: exit 2, one ``error:`` line naming the file or option, and
    torch never imported (so no model can have started loading)."""
    import subprocess
    import sys
    import time

    cases = _bad_inputs(tmp_path, package_dir)
    probe = ("import sys; from bump_backend.cli import main; code = main(sys.argv[1:]); "
             "print('torch' in sys.modules); raise SystemExit(code)")
    for name, (args, named) in cases.items():
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", probe, "bump", *args, "--model", str(tmp_path / "m")],
                              capture_output=True, text=True, timeout=60)
        seconds = time.perf_counter() - t
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (name, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], (name, done.stderr)
        assert done.stdout.strip() == "False", (name, "torch was imported before the inputs were checked")
        print(f"{name}: {seconds:.2f} s")  # interpreter start included; the checks themselves take milliseconds
    assert not (tmp_path / "out").exists()


def test_a_model_error_is_one_line_without_library_noise(tmp_path, package_dir):
    """Past the input checks, a failure while loading prints only its ``error:`` line; the libraries'
    own output (and progress) needs ``--verbose``."""
    import subprocess
    import sys

    Image.new("RGB", (96, 64), (120, 90, 70)).save(tmp_path / "shot.png")
    args = [sys.executable, "-m", "bump_backend", "bump", str(tmp_path / "shot.png"), "--package", str(package_dir),
            "--out", str(tmp_path / "out"), "--model", str(tmp_path / "no_model"), "--device", "cpu"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "no_model" in lines[0]


def test_clip_skip_deeper_than_the_model_is_one_line_after_it_loads(spec, scene, tmp_path):
    """The contract allows clip skip 1-12, the tiny model's text encoder has 2 layers: a settings PNG
    asking for 5 is refused once the model is known, naming the field and the limit, nothing written."""
    image, _sidecar = scene
    shot = tmp_path / "shot.png"
    Image.fromarray(image).save(shot)
    settings_png = infotext.save_png(tmp_path / "settings.png", image, "photo of a man\nSteps: 4, Sampler: Euler, "
                                     "CFG scale: 5, Seed: 3, Denoising strength: 0.5, Clip skip: 5")
    out = tmp_path / "out"
    args = ["bump", str(shot), "--settings-from", str(settings_png), "--out", str(out), "--model", spec.base,
            "--ip-adapter", spec.ip_adapter, "--ip-adapter-weight", spec.ip_adapter_weight, "--device", "cpu",
            "--no-face-pass"]
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bump_backend", *args], capture_output=True, text=True, timeout=300)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert err[0].startswith("error: params.clip_skip (Clip skip) is 5") and "limit of 2" in err[0], err
    assert not out.exists() or not any(out.iterdir())
    # the model's own depth is allowed
    two = infotext.save_png(tmp_path / "two.png", image, "photo of a man\nSteps: 2, Sampler: Euler, CFG scale: 5, "
                            "Seed: 3, Denoising strength: 0.5, Clip skip: 2")
    assert main([*args[:3], str(two), *args[4:]]) == 0

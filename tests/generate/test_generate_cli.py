"""``python -m bump_backend bump``: writes the result, face crops, mask and record; replays it."""

from __future__ import annotations

import json

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
    import pytest

    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    with pytest.raises(SystemExit, match="CHARACTER_ID=TEXT"):
        main(["bump", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "none"),
              "--character-prompt", "no-equals-sign"])

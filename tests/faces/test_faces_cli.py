"""The command line: JSON on stdout, one-line errors and non-zero exits, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bump_backend.cli import SUBCOMMANDS, main
from bump_backend.faces.image_io import save_image

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bump_backend", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_detect_json_and_roundtrip(tmp_path, rolled_scene):
    path = tmp_path / "scene.png"
    save_image(path, rolled_scene.image)
    done = run_cli("faces", "detect", str(path), "--json", "--skip-smaller", "0", "--debug", str(tmp_path / "dbg"))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) >= {"faces", "skipped", "ms"}
    assert len(data["faces"]) == len(rolled_scene.faces)
    face = data["faces"][0]
    assert set(face) >= {"box", "score", "roll", "yaw", "pitch", "eyes", "source"} and len(face["box"]) == 4
    assert "Traceback" not in done.stderr and "W0000" not in done.stderr
    debug = tmp_path / "dbg" / "scene"
    assert (debug / "contact_sheet.png").exists() and (debug / "face_01_mask.png").exists()
    assert (debug / "00_detections.png").exists() and (debug / "faces.json").exists()

    turned = run_cli("faces", "detect", str(path), "--json", "--skip-smaller", "0", "--upside-down")
    assert turned.returncode == 0, turned.stderr
    assert len(json.loads(turned.stdout)["faces"]) == len(rolled_scene.faces)
    plain = run_cli("faces", "detect", str(path), "--json", "--skip-smaller", "0", "--no-second-look")
    assert plain.returncode == 0, plain.stderr
    assert len(json.loads(plain.stdout)["faces"]) == len(rolled_scene.faces)

    out = tmp_path / "out.png"
    done = run_cli("faces", "roundtrip", str(path), "--out", str(out), "--size", "512")
    assert done.returncode == 0, done.stderr
    assert "pixels changed outside the masks: 0" in done.stdout
    assert np.asarray(Image.open(out)).shape == rolled_scene.image.shape


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_bad_image_is_one_line_and_non_zero(tmp_path, capsys, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    assert main(["faces", "detect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_bad_sidecar_and_output(tmp_path, capsys):
    image = tmp_path / "ok.png"
    save_image(image, np.full((64, 64, 3), 200, np.uint8))
    sidecar = tmp_path / "s.json"
    sidecar.write_text('{"schema": "render-sidecar", "schema_version": 1, "width": 64}')
    assert main(["faces", "detect", str(image), "--geometry", str(sidecar)]) == 2
    assert "height" in capsys.readouterr().err
    assert main(["faces", "roundtrip", str(image), "--out", str(tmp_path / "x.nope")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_dispatcher_is_extensible():
    assert SUBCOMMANDS["faces"] == "bump_backend.faces.cli"
    with pytest.raises(SystemExit):
        main(["--help"])


def test_search_switches_reach_the_settings():
    import argparse

    from bump_backend.faces import cli as faces_cli

    parser = argparse.ArgumentParser()
    faces_cli.add_parser(parser.add_subparsers(dest="command"))
    default = faces_cli._settings(parser.parse_args(["faces", "detect", "x.png"]))
    assert default.second_look and default.small_faces and default.middle_rotations == ()
    switched = faces_cli._settings(parser.parse_args(["faces", "detect", "x.png", "--no-second-look", "--upside-down"]))
    assert not switched.second_look and switched.middle_rotations == (0, 180)
    assert not faces_cli._settings(parser.parse_args(["faces", "detect", "x.png", "--no-small-faces"])).small_faces

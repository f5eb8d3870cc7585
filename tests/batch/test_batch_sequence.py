"""``sequence = true`` on a shot: its rendered frames (with sidecars) bumped as ONE sequence job.

Planning is checked without rendering; one real run renders 3 frames at 128x96 with bpy and bumps
them through a real backend (tiny model) as a single sequence job.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from batch_helpers import done_records, job_text, run_batch

from headless_renderer.batch.jobfile import JobFileError, load_job
from headless_renderer.batch.units import build_plan
from profile_rig.imaging.png_io import read_png


def _sequence_job(url: str, blend: Path, sequence: str = "{ min_face = 4.0, min_sharpness = 0.0 }",
                  frames: str = '"1-3"') -> str:
    return textwrap.dedent(f'''
        version = 1

        [defaults]
        output = "out"
        backends = ["{url}"]

        [defaults.package]
        views = ["front"]
        resolution = 96
        preset = "preview"
        samples = 1

        [defaults.bump]
        steps = 4
        denoise = 0.5
        sampler = "Euler"
        seed = 7
        face_size = 64

        [characters.mateo]
        demo = "demo_man"

        [[entries]]
        characters = ["mateo"]
        tasks = ["package", "shots"]

        [[entries.shots]]
        name = "turn"
        blend = "{blend}"
        cameras = ["CamA"]
        frames = [{frames}]
        object = "Mateo"
        resolution = [128, 96]
        preset = "preview"
        samples = 1
        sequence = {sequence}
    ''')


def _write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sequence_plans_one_unit_and_leaves_the_renders_hashes_alone(tmp_path):
    blend = tmp_path / "street.blend"
    blend.write_bytes(b"planning only hashes the file")
    url = "http://127.0.0.1:9"
    seq = build_plan(load_job(_write(tmp_path, _sequence_job(url, blend), "seq.toml")))
    plain = build_plan(load_job(_write(tmp_path, _sequence_job(url, blend, "false"), "plain.toml")))
    renders = [f"mateo/shot/turn/CamA/f000{i}" for i in (1, 2, 3)]
    assert set(seq.units) == {"mateo/package", *renders, "mateo/bump_sequence/turn/CamA"}
    assert set(plain.units) == {"mateo/package", *renders, *(r.replace("/shot/", "/bump_shot/") for r in renders)}
    assert all(seq.units[r].hash == plain.units[r].hash for r in ["mateo/package", *renders])
    unit = seq.units["mateo/bump_sequence/turn/CamA"]
    assert set(unit.needs) == {"mateo/package", *renders}
    assert [f["frame"] for f in unit.spec["frames"]] == [1, 2, 3]
    assert unit.spec["sequence"] == {"min_face": 4.0, "min_sharpness": 0.0}
    other = build_plan(load_job(_write(tmp_path, _sequence_job(url, blend, "{ min_face = 8.0 }"), "b.toml")))
    assert other.units["mateo/bump_sequence/turn/CamA"].hash != unit.hash
    # a job file without `sequence` plans exactly as before (the existing test pins its unit ids)
    base = build_plan(load_job(_write(tmp_path, job_text(url, blend), "base.toml")))
    assert not any(u.kind == "bump_sequence" for u in base.units.values())


@pytest.mark.parametrize(("sequence", "frames", "field", "words"), [
    ("{ crf = 99 }", '"1-3"', "sequence.crf", "0 to 51"),
    ("{ temporal_strenght = 0.5 }", '"1-3"', "sequence", "unknown field"),
    ('"yes"', '"1-3"', "sequence", "expected true"),
    ("true", "1", "sequence", "at least two frames"),
])
def test_bad_sequence_settings_are_reported_with_their_field(tmp_path, sequence, frames, field, words):
    blend = tmp_path / "street.blend"
    blend.write_bytes(b"x")
    with pytest.raises(JobFileError) as caught:
        load_job(_write(tmp_path, _sequence_job("http://127.0.0.1:9", blend, sequence, frames), "bad.toml"))
    text = str(caught.value)
    assert f"shots[0].{field}" in text and words in text, text


def test_sequence_shot_is_bumped_as_one_job(backend, shot_blend, tmp_path):
    from character_library import Library

    with Library.open(tmp_path / "lib"):
        pass  # an empty library: the batch records the character, its package and the sequence run
    text = _sequence_job(backend["url"], shot_blend).replace('output = "out"', 'output = "out"\nlibrary = "lib"')
    job = _write(tmp_path, text, "job.toml")
    result = run_batch(job, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    done = done_records(out)
    assert "mateo~bump_sequence~turn~CamA" in done
    assert not any("bump_shot" in key for key in done)
    seq = out / "mateo/shots_bumped/turn/CamA_sequence"
    frames = sorted((seq / "frames").glob("*.png"))
    assert [p.name for p in frames] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    assert read_png(frames[0]).shape[:2] == (96, 128)
    record = json.loads((seq / "sequence.json").read_text())
    assert len(record["frames"]) == 3 and record["tracks"][0]["character_id"]  # faces from the render sidecars
    assert sum(t["bumped"] for t in record["tracks"]) == 3
    assert (seq / "sequence.mp4").stat().st_size > 0 and (seq / "before_after.png").is_file()
    assert done["mateo~bump_sequence~turn~CamA"]["job_id"]
    with Library.open(tmp_path / "lib", create=False) as lib:  # one history run for the whole sequence
        [run] = lib.list_runs("Mateo")
        assert run.settings["sequence"]["frames"] == 3 and run.settings["sequence"]["faces_bumped"] == 3
        assert run.seed == record["face"]["seed"] and run.model.endswith(f"[{record['model']['hash']}]")
        assert run.settings["batch"]["unit"] == "mateo/bump_sequence/turn/CamA" and run.package_version == 1
        assert {Path(p).name for p in run.outputs} == {"sequence.mp4", "frames", "sequence.json"}
    again = run_batch(job, timeout=300)  # a second run finds it done
    assert again.returncode == 0 and done_records(out)["mateo~bump_sequence~turn~CamA"] == \
        done["mateo~bump_sequence~turn~CamA"]

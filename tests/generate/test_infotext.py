"""A1111 ``parameters`` text: our writer, A1111's parser rules, PNG chunks, settings import."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from bump_backend.generate import infotext
from bump_backend.generate.settings import BumpSettings

A1111_SAMPLE = (
    "RAW photo of Marco, (20-year-old:1.2) Spanish man, goatee\n"
    "Negative prompt: cartoon, painting, illustration, (worst quality, low quality, normal quality:2)\n"
    "Steps: 38, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653, "
    "Size: 512x768, Model hash: 6ce0161689, Model: realisticVisionV51, Denoising strength: 0.32, "
    'Lora hashes: "add_detail: 7c6bad76eb54, more_details: 3b8aa1d351ef", Version: v1.9.4'
)


def test_parse_a1111_sample():
    p = infotext.parse_infotext(A1111_SAMPLE)
    assert p["Prompt"] == "RAW photo of Marco, (20-year-old:1.2) Spanish man, goatee"
    assert p["Negative prompt"].endswith("(worst quality, low quality, normal quality:2)")
    assert p["Steps"] == "38" and p["CFG scale"] == "6.5" and p["Seed"] == "3141592653"
    assert (p["Size-1"], p["Size-2"]) == ("512", "768")
    assert p["Lora hashes"] == "add_detail: 7c6bad76eb54, more_details: 3b8aa1d351ef"
    assert p["Version"] == "v1.9.4"
    settings = BumpSettings.from_infotext(p)
    assert (settings.steps, settings.cfg, settings.seed, settings.denoise) == (38, 6.5, 3141592653, 0.32)
    assert settings.sampler == "DPM++ 2M Karras"  # A1111 1.9 splits the schedule type out


def test_round_trip_with_quoting():
    params = {"Steps": 35, "Sampler": "Restart", "CFG scale": 7.0, "Seed": 42, "Size": "720x1280",
              "Denoising strength": 0.4, "Face prompt": "freckles, mole: left cheek", "Identity score": "0.912, 0.871",
              "Note": 'a "quoted" word'}
    text = infotext.build_infotext("prompt line one\nline two", "bad, worse", params)
    p = infotext.parse_infotext(text)
    assert p["Prompt"] == "prompt line one\nline two"
    assert p["Negative prompt"] == "bad, worse"
    assert p["CFG scale"] == "7" and p["Denoising strength"] == "0.4"
    assert p["Face prompt"] == "freckles, mole: left cheek"
    assert p["Identity score"] == "0.912, 0.871"
    assert p["Note"] == 'a "quoted" word'
    assert (p["Size-1"], p["Size-2"]) == ("720", "1280")


def test_png_chunks(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    record = {"schema": "bump-record", "seed": 7}
    path = infotext.save_png(tmp_path / "x.png", image, "p\nSteps: 1, Sampler: Euler, Seed: 7", record)
    with Image.open(path) as png:
        assert png.info["parameters"].startswith("p\nSteps: 1")  # what A1111's PNG Info reads
    assert infotext.read_record(path) == record
    infotext.write_record(tmp_path / "x.json", record)
    assert json.loads((tmp_path / "x.json").read_text()) == record

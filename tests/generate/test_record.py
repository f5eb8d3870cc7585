"""The bump record contract: old records read, bad ones are refused by field, one history conversion,
and the infotext written and read through the job contract's one label table (no model needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bump_backend.generate import infotext
from bump_backend.generate.settings import BumpSettings, PassOverrides
from bump_contracts.bump_job import FACE_PARAMS, PARAMS
from bump_contracts.bump_record import RECORD_VERSION, BumpRecord
from bump_contracts.errors import ContractError

V1 = Path(__file__).parent / "data" / "bump_record_v1.json"  # written by the generator before the typed record


def _v1() -> dict:
    return json.loads(V1.read_text(encoding="utf-8"))


def test_a_version_1_record_reads_and_keeps_every_field():
    data = _v1()
    record = BumpRecord.from_dict(data)
    assert record.seed == 7 and record.model.components == {} and record.faces[0].chosen_seed == 7
    again = record.to_dict()
    assert again.pop("schema_version") == RECORD_VERSION and data.pop("schema_version") == 1
    assert again == data  # same fields, same values: old readers of the JSON see nothing new
    assert BumpRecord.loads(record.dumps()) == record


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.pop("seed"), "seed"),
    (lambda d: d.update(schema="bump-job-request"), "schema"),
    (lambda d: d.update(schema_version=RECORD_VERSION + 1), "schema_version"),
    (lambda d: d["faces"][0].update(seeds=["7"]), "faces[0].seeds"),
    (lambda d: d["settings"].update(stepz=3), "settings.stepz"),
    (lambda d: d["model"].pop("hash"), "model.hash"),
    (lambda d: d["input"].update(width="128"), "input.width"),
    (lambda d: d.update(working_size=[0, 8]), "working_size"),
])
def test_a_bad_record_is_refused_naming_the_field(change, field):
    data = _v1()
    change(data)
    with pytest.raises(ContractError) as info:
        BumpRecord.from_dict(data)
    assert info.value.field == field and field.split("[")[0].split(".")[0] in str(info.value)


def test_history_fields_are_the_resolved_settings():
    record = BumpRecord.from_dict(_v1())
    fields = record.history_fields()
    assert fields["seed"] == 7 and fields["steps"] == 3 and fields["prompt"] == "photo of a man"
    assert fields["model"] == f"{record.model.name} [{record.model.hash}]"
    assert fields["identity_score"] == record.best_identity_score and fields["settings"] == record.settings


def test_every_infotext_label_is_written_and_read_through_the_one_table():
    labels = [r.infotext for r in (*PARAMS.values(), *FACE_PARAMS.values()) if r.infotext]
    assert len(labels) == len(set(labels))
    record = BumpRecord.from_dict(_v1())
    settings = BumpSettings(prompt="photo of a man", seed=7, steps=12, cfg=5.5, denoise=0.3, clip_skip=2,
                            candidates=3, face_size=64, face_padding=0.5, pose_mode="average", pose_views=2,
                            ip_adapter_scale=0.7, whole_pass=False,
                            face=PassOverrides(steps=9, cfg=4.0, denoise=0.25, sampler="Euler a", prompt="face",
                                               negative_prompt="blur", ip_adapter_scale=0.9))
    text = infotext.bump_infotext(settings, record)
    parsed = infotext.parse_infotext(text)
    written = {r.infotext for r in (*PARAMS.values(), *FACE_PARAMS.values()) if r.infotext}
    assert written <= set(parsed)  # every labelled parameter is in the text under its table label
    back = BumpSettings.from_infotext(parsed)
    assert back == replace(settings, max_side=back.max_side, batch_size=back.batch_size)

"""The sequence request's versions and the frames_zip member rules (stdlib contract, no server)."""

from __future__ import annotations

import stat

import pytest

from bump_contracts.errors import ContractError
from bump_contracts.sequence_job import (
    FRAMES_ZIP_MAX_MEMBER_BYTES,
    SequenceRequest,
    frames_zip_member_problem,
    sequence_history_fields,
)


def test_a_frames_zip_request_is_version_2_and_round_trips():
    request = SequenceRequest(frames_zip=True)
    data = request.to_dict()
    assert data["schema_version"] == 2 and data["frames_zip"] is True
    assert SequenceRequest.from_dict(data) == request
    plain = SequenceRequest(frames_path="/clips/a").to_dict()
    assert plain["schema_version"] == 1 and "frames_zip" not in plain  # an older server still reads it
    with pytest.raises(ContractError) as caught:
        SequenceRequest.from_dict({**data, "schema_version": 1})
    assert caught.value.field == "frames_zip"
    for bad, field in (({**data, "frames_zip": "yes"}, "frames_zip"), ({**data, "frames_path": "/x"}, "frames_zip"),
                       ({**data, "schema_version": 3}, "schema_version")):
        with pytest.raises(ContractError) as caught:
            SequenceRequest.from_dict(bad)
        assert caught.value.field == field


@pytest.mark.parametrize("name, size, mode, fine", [
    ("frame_0001.png", 10, 0, True),
    ("frame_0001.flow.npy", 10, stat.S_IFREG | 0o644, True),
    ("frames/frame_0001.PNG", 10, 0, True),
    ("clip.json", 10, 0, True),
    ("frames/", 0, stat.S_IFDIR | 0o755, True),
    ("../frame.png", 10, 0, False),
    ("frames/../../x.png", 10, 0, False),
    ("/etc/passwd.json", 10, 0, False),
    ("C:/x.png", 10, 0, False),
    ("a\\b.png", 10, 0, False),
    (".hidden.png", 10, 0, False),
    ("a/b/c.png", 10, 0, False),
    ("a/b/", 0, 0, False),
    ("run.sh", 10, 0, False),
    ("link.png", 10, stat.S_IFLNK | 0o777, False),
    ("fifo.png", 10, stat.S_IFIFO | 0o644, False),
    ("big.npy", FRAMES_ZIP_MAX_MEMBER_BYTES + 1, 0, False),
    ("", 0, 0, False),
])
def test_frames_zip_member_rules(name, size, mode, fine):
    assert (frames_zip_member_problem(name, size, mode) is None) == fine


def test_sequence_history_fields_from_a_finished_record():
    record = {"schema": "bump-sequence-record", "mode": "bump", "face": {"seed": 41, "face_size": 512},
              "settings": {"steps": 20, "cfg": 5.0, "denoise": 0.4, "sampler": "Euler a", "seed": 7,
                           "prompt": "RAW photo", "negative_prompt": ""},
              "params": {"crf": 18, "detect_every": 5}, "frames": [{}, {}, {}],
              "tracks": [{"bumped": 3}, {"bumped": 1}], "resumed_frames": 1,
              "model": {"hash": "abc123", "name": "sd15", "base": "x"}}
    fields = sequence_history_fields(record)
    assert fields["seed"] == 41 and fields["steps"] == 20 and fields["model"] == "sd15 [abc123]"
    assert fields["settings"]["sequence"] == {"frames": 3, "tracks": 2, "faces_bumped": 4, "resumed_frames": 1,
                                              "crf": 18, "detect_every": 5}
    assert sequence_history_fields({**record, "model": None})["model"] == ""


@pytest.mark.parametrize("change, field", [({"schema": "bump-record"}, "schema"), ({"mode": "analyse-only"}, "mode"),
                                           ({"tracks": "two"}, "record"), ({"model": {"name": "x"}}, "model.hash")])
def test_sequence_history_fields_refuse_what_is_not_a_finished_sequence(change, field):
    record = {"schema": "bump-sequence-record", "settings": {}, "face": {}, "params": {}, "frames": [], "tracks": []}
    with pytest.raises(ContractError) as caught:
        sequence_history_fields({**record, **change})
    assert caught.value.field == field

import numpy as np
import pytest

from bump_contracts.views import ViewError, near_duplicates, parse_view, resolve_views
from profile_rig.core.demo_shape import build_demo_shape, hair_signed_distance
from profile_rig.core.head_bones import eyes_from_head_bone, match_eye_pair, match_name
from profile_rig.core.phenotype import (
    PRESETS,
    Phenotype,
    PhenotypeError,
    parse_ethnicity,
    parse_gender,
    resolve_face_target,
)


def test_age_and_gender_weights_follow_makehuman():
    assert Phenotype(age=25).age_weights() == pytest.approx({"young": 1.0, "old": 0.0})
    assert Phenotype(age=11).age_weights() == pytest.approx({"child": 1.0, "young": 0.0})
    assert Phenotype(age=57.5).age_weights() == pytest.approx({"young": 0.5, "old": 0.5})
    weights = Phenotype(gender=0.25, ethnicity={"african": 1, "asian": 1}).target_weights({})
    macro = {k: v for k, v in weights.items() if "universal" not in k}
    assert sum(macro.values()) == pytest.approx(1.0)
    assert weights["macrodetails/african-male-young.target.gz"] == pytest.approx(0.5 * 0.25)


def test_parsers_and_errors():
    assert parse_gender("female") == 0.0 and parse_gender("0.3") == 0.3
    assert parse_ethnicity("african=0.7, caucasian=0.3") == {"african": 0.7, "caucasian": 0.3}
    with pytest.raises(PhenotypeError, match="klingon"):
        parse_ethnicity("klingon")
    with pytest.raises(PhenotypeError, match="age"):
        Phenotype(age=200)
    with pytest.raises(PhenotypeError, match="unknown face part"):
        resolve_face_target("nose-wobble", 0.5, {"nose-scale-horiz-incr": "nose/x"})
    available = {"nose-scale-horiz-incr": "nose/i", "nose-scale-horiz-decr": "nose/d", "head-oval": "head/o"}
    assert resolve_face_target("nose-scale-horiz", 0.3, available) == "nose/i"
    assert resolve_face_target("nose-scale-horiz", -0.3, available) == "nose/d"
    assert resolve_face_target("head-oval", 0.5, available) == "head/o"


def test_skin_colour_follows_ethnicity():
    dark = Phenotype(ethnicity={"african": 1}).skin_color()
    light = Phenotype(ethnicity={"caucasian": 1}).skin_color()
    assert sum(dark) < 0.5 * sum(light)


def test_two_phenotypes_make_two_different_heads():
    a = build_demo_shape(PRESETS["demo_man"])
    b = build_demo_shape(PRESETS["demo_woman"])
    assert a.landmarks["eye_distance"] != pytest.approx(b.landmarks["eye_distance"], rel=1e-3)
    # align at the eyes and compare the face shape
    ha = a.vertices[: len(b.vertices)] if len(a.vertices) == len(b.vertices) else None
    assert ha is None or np.abs(a.vertices - b.vertices).max() > 0.01
    for shape in (a, b):
        assert shape.landmarks["l-eye"][0] > shape.landmarks["r-eye"][0]  # left eye at +X
        assert shape.landmarks["eye_mid"][1] < shape.landmarks["head"][1]  # eyes in front (-Y)
        assert 1.2 < shape.landmarks["eye_mid"][2] < 2.0  # standing on the ground
        assert set(shape.bones) >= {"head", "eye.L", "eye.R"}
        assert shape.point_attributes["brow_mask"].max() > 0.5


def test_hairline_covers_crown_not_face():
    shape = build_demo_shape(PRESETS["demo_man"])
    L = shape.landmarks
    d = L["eye_distance"]
    crown = L["eye_mid"] + np.array([0, 1.2 * d, 2.2 * d])
    cheek = L["eye_mid"] + np.array([0.8 * d, -0.2 * d, -0.8 * d])
    sd = hair_signed_distance(np.stack([crown, cheek]), L)
    assert sd[0] > 0 > sd[1]


def test_views_resolution_and_duplicates():
    specs = resolve_views("default")
    assert [s.name for s in specs][:3] == ["front", "three_quarter_left", "three_quarter_right"]
    assert len(specs) == 9 and near_duplicates(specs) == []
    assert parse_view("tilt:10:5:3").pitch == 5
    assert near_duplicates(resolve_views("front,a:5")) == [("front", "a")]
    for bad in ("sideways", "Bad:1", "x:1:2:3:4", "x:999"):
        with pytest.raises(ViewError):
            resolve_views(bad)
    with pytest.raises(ViewError, match="twice"):
        resolve_views("front,front")


def test_bone_name_matching_across_rig_families():
    assert match_name(["Genesis8Male:head", "hip"], ["head"]) == "Genesis8Male:head"
    assert match_eye_pair(["lEye", "rEye", "head"]) == ("lEye", "rEye")
    assert match_eye_pair(["l_eye", "r_eye"]) == ("l_eye", "r_eye")
    assert match_eye_pair(["mixamorig:LeftEye", "mixamorig:RightEye"]) == ("mixamorig:LeftEye", "mixamorig:RightEye")
    assert match_eye_pair(["spine"]) is None


def test_eye_estimate_from_head_bone_matches_mpfb_mesh():
    shape = build_demo_shape(PRESETS["demo_man"])
    bone = shape.bones["head"]
    right, left = eyes_from_head_bone(bone.head, bone.tail, np.array([0, -1.0, 0]))
    d = shape.landmarks["eye_distance"]
    assert np.linalg.norm(left - shape.landmarks["l-eye"]) < 0.5 * d
    assert np.linalg.norm(right - shape.landmarks["r-eye"]) < 0.5 * d

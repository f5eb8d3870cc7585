"""A demo character's phenotype and its translation into MakeHuman macro/face target weights.

Follows MakeHuman's macro model: ``{race}-{gender}-{age}`` targets weighted by race x gender x
age, and ``universal-{gender}-{age}-{muscle}-{weight}`` targets weighted by gender x age x
muscle x weight, plus signed face-part targets. Pure Python; no Blender.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

ETHNICITIES = ("african", "asian", "caucasian")

# Face-part target pairs: a signed value picks the second name when positive, the first when negative.
_ANTONYMS = (
    ("decr", "incr"),
    ("down", "up"),
    ("in", "out"),
    ("backward", "forward"),
    ("compress", "uncompress"),
    ("concave", "convex"),
    ("less", "more"),
    ("small", "big"),
    ("close", "far"),
)

# Skin base colours (sRGB 0-255) the ethnicity mix blends between, in linear light.
_SKIN_SRGB = {
    "african": (92, 58, 40),
    "asian": (214, 170, 132),
    "caucasian": (224, 176, 152),
}
_HAIR_SRGB = {
    "black": (18, 14, 12),
    "dark_brown": (45, 30, 20),
    "brown": (85, 58, 38),
    "auburn": (110, 50, 28),
    "blonde": (190, 150, 95),
    "grey": (150, 148, 145),
    "white": (215, 212, 205),
}
_EYE_SRGB = {
    "brown": (70, 40, 20),
    "dark_brown": (40, 22, 12),
    "hazel": (110, 85, 45),
    "green": (70, 100, 60),
    "blue": (70, 110, 160),
    "grey": (115, 125, 130),
}


class PhenotypeError(ValueError):
    """A phenotype value is out of range or unknown."""


def srgb_to_linear(value: float) -> float:
    c = value / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _linear(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(srgb_to_linear(c) for c in rgb)  # type: ignore[return-value]


@dataclass(frozen=True)
class Phenotype:
    """What the demo character looks like. Ages in years; gender 0 = female .. 1 = male."""

    name: str = "Demo"
    age: float = 25.0
    gender: float = 1.0
    ethnicity: dict[str, float] = field(default_factory=lambda: {"caucasian": 1.0})
    muscle: float = 0.5
    weight: float = 0.5
    face: dict[str, float] = field(default_factory=dict)
    hair_color: str = "auto"
    eye_color: str = "auto"
    hair: str = "short"  # short | none

    def __post_init__(self) -> None:
        if not 1 <= self.age <= 90:
            raise PhenotypeError(f"age must be within 1..90 years, got {self.age}")
        if not 0 <= self.gender <= 1:
            raise PhenotypeError(f"gender must be within 0 (female)..1 (male), got {self.gender}")
        for key in ("muscle", "weight"):
            if not 0 <= getattr(self, key) <= 1:
                raise PhenotypeError(f"{key} must be within 0..1, got {getattr(self, key)}")
        unknown = set(self.ethnicity) - set(ETHNICITIES)
        if unknown:
            raise PhenotypeError(f"unknown ethnicity {', '.join(sorted(unknown))}; use {', '.join(ETHNICITIES)}")
        if any(v < 0 for v in self.ethnicity.values()) or sum(self.ethnicity.values()) <= 0:
            raise PhenotypeError("ethnicity weights must be >= 0 and not all zero")
        if self.hair_color != "auto" and self.hair_color not in _HAIR_SRGB:
            raise PhenotypeError(f"hair_color: use auto or one of {', '.join(_HAIR_SRGB)}")
        if self.eye_color != "auto" and self.eye_color not in _EYE_SRGB:
            raise PhenotypeError(f"eye_color: use auto or one of {', '.join(_EYE_SRGB)}")
        if self.hair not in ("short", "none"):
            raise PhenotypeError("hair: use short or none")
        for key, value in self.face.items():
            if not -1 <= value <= 1:
                raise PhenotypeError(f"face part {key}: value must be within -1..1, got {value}")

    # ---- macro weights -------------------------------------------------------------------
    def ethnicity_weights(self) -> dict[str, float]:
        total = sum(self.ethnicity.get(k, 0.0) for k in ETHNICITIES)
        return {k: self.ethnicity.get(k, 0.0) / total for k in ETHNICITIES}

    def age_slider(self) -> float:
        """MakeHuman's age slider: 0 = 1 year, 0.1875 = 11, 0.5 = 25, 1 = 90."""
        years = self.age
        if years < 11:
            return (years - 1) / 10 * 0.1875
        if years < 25:
            return 0.1875 + (years - 11) / 14 * 0.3125
        return 0.5 + (years - 25) / 65 * 0.5

    def age_weights(self) -> dict[str, float]:
        v = self.age_slider()
        if v < 0.1875:
            t = v / 0.1875
            return {"baby": 1 - t, "child": t}
        if v < 0.5:
            t = (v - 0.1875) / 0.3125
            return {"child": 1 - t, "young": t}
        t = (v - 0.5) / 0.5
        return {"young": 1 - t, "old": t}

    def gender_weights(self) -> dict[str, float]:
        return {"female": 1 - self.gender, "male": self.gender}

    @staticmethod
    def _three_way(value: float, names: tuple[str, str, str]) -> dict[str, float]:
        if value < 0.5:
            t = value / 0.5
            return {names[0]: 1 - t, names[1]: t}
        t = (value - 0.5) / 0.5
        return {names[1]: 1 - t, names[2]: t}

    def target_weights(self, available_face_targets: dict[str, str] | None = None) -> dict[str, float]:
        """Target path (relative to ``targets/``) -> weight."""
        weights: dict[str, float] = {}
        genders, ages = self.gender_weights(), self.age_weights()
        muscles = self._three_way(self.muscle, ("minmuscle", "averagemuscle", "maxmuscle"))
        masses = self._three_way(self.weight, ("minweight", "averageweight", "maxweight"))
        for race, rw in self.ethnicity_weights().items():
            for gender, gw in genders.items():
                for age, aw in ages.items():
                    w = rw * gw * aw
                    if w > 1e-9:
                        weights[f"macrodetails/{race}-{gender}-{age}.target.gz"] = w
        for gender, gw in genders.items():
            for age, aw in ages.items():
                for muscle, mw in muscles.items():
                    for mass, ww in masses.items():
                        w = gw * aw * mw * ww
                        if w > 1e-9:
                            weights[f"macrodetails/universal-{gender}-{age}-{muscle}-{mass}.target.gz"] = w
        for key, value in self.face.items():
            path = resolve_face_target(key, value, available_face_targets)
            if path:
                weights[path] = weights.get(path, 0.0) + abs(value)
        return weights

    # ---- appearance ----------------------------------------------------------------------
    def skin_color(self) -> tuple[float, float, float]:
        """Linear RGB skin base colour following the ethnicity mix, a touch paler/ruddier by age."""
        mix = [0.0, 0.0, 0.0]
        for race, w in self.ethnicity_weights().items():
            for i, c in enumerate(_linear(_SKIN_SRGB[race])):
                mix[i] += w * c
        if self.age > 50:
            mix = [c * (1 - 0.002 * (self.age - 50)) for c in mix]
        return (mix[0], mix[1], mix[2])

    def hair_rgb(self) -> tuple[float, float, float]:
        name = self.hair_color
        if name == "auto":
            if self.age >= 70:
                name = "grey"
            else:
                w = self.ethnicity_weights()
                name = "black" if w["african"] + w["asian"] > 0.5 else "dark_brown"
        return _linear(_HAIR_SRGB[name])

    def eye_rgb(self) -> tuple[float, float, float]:
        name = self.eye_color
        if name == "auto":
            name = "dark_brown" if self.ethnicity_weights()["caucasian"] < 0.5 else "hazel"
        return _linear(_EYE_SRGB[name])

    def variation_seed(self) -> int:
        """A stable number for small per-character variations (skin noise phase)."""
        return int(hashlib.sha1(repr(sorted(self.to_dict().items())).encode()).hexdigest()[:8], 16)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ethnicity"] = dict(self.ethnicity)
        data["face"] = dict(self.face)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Phenotype:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise PhenotypeError(f"unknown phenotype field(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def describe(self) -> str:
        """Prompt-style description: '25-year-old caucasian man'."""
        w = self.ethnicity_weights()
        main = max(w, key=w.get)
        noun = ("man" if self.gender >= 0.5 else "woman") if self.age >= 18 else ("boy" if self.gender >= 0.5 else "girl")
        return f"{round(self.age)}-year-old {main} {noun}"


def parse_gender(text: str) -> float:
    aliases = {"male": 1.0, "man": 1.0, "m": 1.0, "female": 0.0, "woman": 0.0, "f": 0.0}
    if text.lower() in aliases:
        return aliases[text.lower()]
    try:
        value = float(text)
    except ValueError:
        raise PhenotypeError(f"gender: use male, female or a number 0..1, got {text!r}") from None
    if not 0 <= value <= 1 or math.isnan(value):
        raise PhenotypeError(f"gender must be within 0..1, got {text}")
    return value


def parse_ethnicity(text: str) -> dict[str, float]:
    """'caucasian' or 'african=0.7,caucasian=0.3'."""
    result: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        name, _, value = part.partition("=")
        if name not in ETHNICITIES:
            raise PhenotypeError(f"unknown ethnicity {name!r}; use {', '.join(ETHNICITIES)} (mix as name=w,name=w)")
        try:
            result[name] = float(value) if value else 1.0
        except ValueError:
            raise PhenotypeError(f"ethnicity weight for {name} is not a number: {value!r}") from None
    if not result:
        raise PhenotypeError("ethnicity: nothing given")
    return result


def resolve_face_target(key: str, value: float, available: dict[str, str] | None) -> str | None:
    """Target path for a face-part setting like ``nose-scale-horiz=0.4`` or ``head-oval=0.6``."""
    if abs(value) < 1e-9:
        return None
    if available is None:
        from profile_rig.core.mpfb_data import available_targets

        available = available_targets()
    if key in available:
        if value < 0:
            raise PhenotypeError(f"face part {key} is one-sided: use a value within 0..1")
        return available[key]
    for low, high in _ANTONYMS:
        name = f"{key}-{high if value > 0 else low}"
        if name in available:
            return available[name]
    close = sorted(k.rsplit("-", 1)[0] for k in available if k.startswith(key.split("-")[0]))
    hint = f"; e.g. {', '.join(sorted(set(close))[:8])}" if close else ""
    raise PhenotypeError(f"unknown face part {key!r}{hint}")


PRESETS: dict[str, Phenotype] = {
    "demo_man": Phenotype(
        name="Mateo", age=24, gender=1.0, ethnicity={"caucasian": 0.85, "african": 0.15},
        face={"nose-scale-horiz": 0.2, "chin-prominent": 0.3, "eyebrows-trans-down": 0.2},
    ),
    "demo_woman": Phenotype(
        name="Aiko", age=30, gender=0.0, ethnicity={"asian": 1.0},
        face={"nose-scale-horiz": -0.25, "head-oval": 0.6, "mouth-scale-horiz": -0.1},
    ),
}


DEFAULT_PRESET = "demo_man"


def preset_for_gender(gender: float | None) -> str:
    """The demo preset to start from when none is named: the one nearest the asked gender.

    Starting a woman from ``demo_man`` gave her his name and his face targets (a female "Mateo"
    with a male jaw), so ``--gender female`` alone starts from ``demo_woman``.
    """
    if gender is None:
        return DEFAULT_PRESET
    return min(PRESETS, key=lambda name: (abs(PRESETS[name].gender - gender), name != DEFAULT_PRESET))

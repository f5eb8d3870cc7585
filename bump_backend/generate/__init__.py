"""Generation in the bump backend: IP-Adapter img2img with the profile package as identity.

Public API (what the server calls)::

    engine = BumpEngine("sd15")                 # or a ModelSpec / path / hub id; loads once
    result = engine.run(image, package_dir, sidecar=None, settings=BumpSettings(seed=42),
                        progress=lambda stage, step, total: ..., cancel=threading.Event())
    result.save(out_dir)                         # PNG with A1111 infotext, face crops, mask, record

Names load lazily, so importing the command line does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BumpCancelled": "bump_backend.generate.engine",
    "BumpEngine": "bump_backend.generate.engine",
    "BumpResult": "bump_backend.generate.record",
    "CharacterPrompt": "bump_backend.generate.prompts",
    "LoraSpec": "bump_backend.generate.models",
    "ModelError": "bump_backend.generate.models",
    "ModelSpec": "bump_backend.generate.models",
    "BumpSettings": "bump_backend.generate.settings",
    "PassOverrides": "bump_backend.generate.settings",
    "NO_DRIFT_DENOISE": "bump_backend.generate.settings",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bump_backend.generate' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

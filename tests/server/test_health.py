"""The typed health document: what a CUDA server reports (CUDA cannot run here, so torch.cuda is stood in)."""

from __future__ import annotations

import torch

from bump_backend.server.generator import free_vram_mb
from bump_contracts.health import Health


def test_free_vram_is_read_from_cuda_only(monkeypatch):
    assert free_vram_mb(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * 1024**3 + 5, 140 * 1024**3))
    assert free_vram_mb(torch.device("cuda", 0)) == 3072


def test_full_document_round_trips_and_public_drops_the_machine(client):
    full = client.health()
    again = Health.from_dict(full.to_dict())
    assert again == full and again.capabilities.samplers == full.capabilities.samplers
    assert full.capabilities.max_clip_skip == 2  # the tiny model's text encoder has 2 layers (SD 1.5: 12)
    public = full.public().to_dict()
    assert {k for k, v in public.items() if v is not None} == {"status", "version", "contract_version",
                                                               "auth_required"}

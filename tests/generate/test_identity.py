"""Pose-matched references and the per-package embedding cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bump_backend.generate import identity
from bump_backend.testing import tiny_models as tiny


def test_nearest_views_and_weights():
    yaws = np.array([0.0, -45.0, 45.0, 90.0, -90.0])
    assert identity.nearest_views(yaws, 80.0, 2) == [3, 2]
    assert identity.nearest_views(yaws, -170.0, 1) == [4]  # wraps: -170 is 80 from -90, 170 from 0
    assert identity.nearest_views(yaws, None, 0) == [0, 1, 2, 3, 4]
    w = identity.pose_weights(yaws, 40.0)
    assert w.sum() == pytest.approx(1.0) and int(np.argmax(w)) == 2
    assert np.allclose(identity.pose_weights(yaws, None), 0.2)


def test_select_modes_shapes():
    refs = identity.ReferenceViews("c", "h", ["front", "left", "right"], np.array([0.0, -45.0, 45.0]), ["", "", ""],
                                   torch.arange(3 * 5 * 4, dtype=torch.float32).reshape(3, 5, 4),
                                   torch.zeros(3, 5, 4))
    pos, neg, chosen = identity.select_embeds(refs, 30.0, "nearest", 2)
    assert pos.shape == (1, 2, 5, 4) and chosen["views"] == ["right", "front"]
    torch.testing.assert_close(pos[0, 0], refs.embeds[2])
    avg, _, chosen = identity.select_embeds(refs, 45.0, "average")
    assert avg.shape == (1, 1, 5, 4) and max(chosen["weights"], key=chosen["weights"].get) == "right"
    batch = identity.batch_ip_embeds([(pos, neg), (pos, neg)], guidance=True)
    assert batch[0].shape == (4, 2, 5, 4) and torch.all(batch[0][:2] == 0)


def test_package_hash_changes_with_a_view(tmp_path):
    folder = tiny.build_tiny_package(tmp_path / "p")
    first = identity.package_hash(folder)
    assert identity.package_hash(folder) == first
    from PIL import Image

    Image.new("RGB", (64, 64), (1, 2, 3)).save(folder / "front.png")
    assert identity.package_hash(folder) != first


def test_reference_cache_encodes_once(engine, package_dir):
    cache = identity.ReferenceCache()
    a = cache.get(engine.pipe, "k", package_dir)
    b = cache.get(engine.pipe, "k", package_dir)
    assert a is b and (cache.misses, cache.hits) == (1, 1)
    assert a.embeds.shape[0] == 3 and a.yaws.tolist() == [-0.0, -45.0, 90.0]

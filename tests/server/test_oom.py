"""GPU out-of-memory: one retry with lower-memory settings, then a clean failure; the server keeps serving.

A CPU cannot run out of GPU memory on demand, so these tests use a clearly separate test
generator: the real engine (real tiny model, real loaders) whose full-memory attempt raises
torch's OutOfMemoryError, the error a CUDA allocation failure raises.
"""

from __future__ import annotations

import pytest
import torch
from server_helpers import FAST

from bump_backend.server.generator import EngineGenerator, is_out_of_memory
from bump_client.client import BumpClient


class OutOfMemoryTestGenerator(EngineGenerator):
    """Test generator: raises OOM on the first attempt of marked jobs (all attempts when ``always``)."""

    def __init__(self, model, always: bool = False) -> None:
        super().__init__(model)
        self.always = always
        self.attempts: list[bool] = []
        self.during_retry: dict = {}

    def run(self, job, progress, cancel, low_memory):
        if job.settings.prompt != "oom":
            return super().run(job, progress, cancel, low_memory)
        self.attempts.append(low_memory)
        if not low_memory or self.always:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        def spy(stage, step, total):
            pipe = self.engine.pipe
            self.during_retry = {"vae_tiling": pipe.vae.use_tiling,
                                 "ip_processors": sum("IPAdapter" in type(p).__name__
                                                      for p in pipe.unet.attn_processors.values())}
            progress(stage, step, total)

        return super().run(job, spy, cancel, low_memory)


@pytest.mark.parametrize("always", [False, True])
def test_oom_retry_then_clean_failure(make_server, tiny_models, images, tmp_path, always):
    generator = OutOfMemoryTestGenerator(str(tiny_models["spec"]), always=always)
    server = make_server(make_generator=lambda: generator)
    client = BumpClient(server.url)
    package = tiny_models["package"]
    before = client.run(images["png"], tmp_path / "before", FAST, package=package)
    job = client.submit(images["png"], {**FAST, "prompt": "oom", "batch_size": 4}, package=package)
    final = client.wait(job.id, timeout=60)
    assert generator.attempts == [False, True]  # exactly one retry, in lower-memory mode
    if always:
        assert final.state == "failed" and "out of GPU memory" in final.error
    else:
        assert final.state == "done", final.error
        assert generator.during_retry["vae_tiling"]
        record = client.download(job.id, tmp_path / "retried").record
        assert record["settings"]["batch_size"] == 1  # what the engine actually ran with
        assert generator.during_retry["ip_processors"] > 0  # the identity adapter stayed in place
    # the server keeps serving, and the pipeline is exactly as before (same seed, same pixels)
    after = client.run(images["png"], tmp_path / "after", FAST, package=package)
    assert after.record["output"]["sha256"] == before.record["output"]["sha256"]  # pixel hash
    assert not generator.engine.pipe.vae.use_tiling


def test_out_of_memory_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


class SequenceOutOfMemoryGenerator(EngineGenerator):
    """Test generator: the full-memory attempt of a sequence runs out of memory after two frames."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.attempts: list[bool] = []
        self.tiling_during_retry: bool | None = None

    def run_sequence(self, job, progress, cancel, low_memory=False):
        self.attempts.append(low_memory)

        def failing(stage, done, total, eta):
            progress(stage, done, total, eta)
            if low_memory and stage == "frame":
                self.tiling_during_retry = self.engine.pipe.vae.use_tiling
            elif stage == "frame" and done >= 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

        return super().run_sequence(job, failing, cancel, low_memory)


def test_sequence_oom_retries_the_remaining_frames_only(make_server, tiny_models, tmp_path):
    """An out-of-memory half way through a clip: the finished frames stay, the rest run in lower-memory
    mode, and the result has every frame."""
    from bump_backend.testing import clips

    generator = SequenceOutOfMemoryGenerator(str(tiny_models["spec"]))
    server = make_server(make_generator=lambda: generator)
    client = BumpClient(server.url)
    folder = clips.write_folder(iter(clips.photo_clip(4, 160, 128, 48)), tmp_path / "frames")
    params = {"steps": 4, "denoise": 0.5, "sampler": "Euler a", "seed": 7, "face_size": 64, "prompt": "a man"}
    job = client.submit_sequence(frames=folder, params=params, sequence={"min_sharpness": 0.0},
                                 package=tiny_models["package"])
    final = client.wait(job.id, timeout=600)
    assert final.state == "done", final.error
    assert generator.attempts == [False, True] and generator.tiling_during_retry
    assert final.timings["resumed_frames"] == 2  # the two frames before the failure were not redone
    result = client.download(job.id, tmp_path / "got")
    assert len(result.record["frames"]) == 4
    assert not generator.engine.pipe.vae.use_tiling  # back to the normal settings for the next job

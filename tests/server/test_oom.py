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

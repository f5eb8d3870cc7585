"""The torch side of a sequence: aligned face starts through the engine's img2img, one seed per track.

Kept apart from the job so the job's core (tracks, motion, files) runs and is tested without torch;
the job calls any ``Bumper`` (``face_job.py``: a callable from a list of ``FaceJob`` to result crops).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bump_backend.generate import identity, prompts
from bump_backend.generate.engine import BumpEngine
from bump_backend.generate.record import model_record
from bump_backend.generate.settings import BumpSettings
from bump_backend.sequence.face_job import FaceJob


class EngineBumper:
    """Runs face jobs through a warm ``BumpEngine``'s img2img with the face pass's settings.

    Every face of a track gets the track's seed each frame; the crop is always ``face_size``, so the
    initial noise is the same tensor in the face's aligned frame from frame to frame.
    """

    def __init__(self, engine: BumpEngine, settings: BumpSettings, progress=None, cancel=None) -> None:
        engine.check_settings(settings)  # e.g. a clip skip deeper than the model: refused before any frame
        self.engine = engine
        self.settings = settings
        self.pass_settings = settings.face_pass_settings()
        self.cond = prompts.encode_prompts(engine.pipe, self.pass_settings.prompt, self.pass_settings.negative_prompt,
                                           clip_skip=settings.clip_skip)
        self.progress = progress
        self.cancel = cancel
        self.model = model_record(engine.loaded).to_dict()  # the sequence record names what ran

    def __call__(self, jobs: list[FaceJob]) -> list[np.ndarray]:
        """One frame's faces, under the engine's lock (a server may share the engine with other jobs)."""
        with self.engine.lock:
            return self._bump(jobs)

    def _bump(self, jobs: list[FaceJob]) -> list[np.ndarray]:
        out: dict[int, np.ndarray] = {}
        groups: dict[tuple, list[int]] = {}
        embeds = []
        for i, job in enumerate(jobs):
            e = self.engine.package_embeds(job.package, job.yaw, self.settings)  # the engine's lock, its caches
            embeds.append(e)
            key = (job.package is None, tuple(e[0].shape) if e is not None else ())
            groups.setdefault(key, []).append(i)
        fs = self.pass_settings
        for (no_identity, _), members in groups.items():
            for j in range(0, len(members), self.settings.batch_size):
                chunk = members[j:j + self.settings.batch_size]
                ip = clip = None
                if self.engine.has_ip_adapter:
                    ip = identity.batch_ip_embeds([embeds[i] for i in chunk], fs.cfg > 1.0)
                    clip = identity.batch_clip_embeds([embeds[i] for i in chunk], fs.cfg > 1.0)
                cond = prompts.Conditioning.stack([self.cond] * len(chunk))
                results = self.engine.img2img([jobs[i].start for i in chunk], cond, ip,
                                              replace(fs, ip_adapter_scale=0.0) if no_identity else fs,
                                              [jobs[i].seed for i in chunk], stage="face", progress=self.progress,
                                              cancel=self.cancel, clip_embeds=clip)
                out.update(zip(chunk, results, strict=True))
        return [out[i] for i in range(len(jobs))]

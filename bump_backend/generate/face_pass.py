"""The face pass (FacePop's method): faces found, aligned upright, bumped in batches, pasted back.

Faces come from the render sidecar's geometry where there is one (else the detector), found in
the engine's working-image pixels, either inside the job or beforehand on any thread
(:func:`find_job_faces`). Each face takes its character's package and prompt; faces go through
the UNet together when their references and prompts stack, with N candidate seeds each, ranked
by identity, and the best is pasted back through its mask.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from bump_backend.generate import faceid, identity, prompts, rank, samplers
from bump_backend.generate.images import image_sha256, load_rgb, scale_sidecar, working_image
from bump_backend.generate.settings import BumpSettings
from bump_contracts.bump_record import FacePackage, FaceRecord

if TYPE_CHECKING:
    from bump_backend.generate.engine import BumpEngine, Progress


@dataclass
class JobFaces:
    """A job's faces, found in the engine's working-image pixels (see :func:`find_job_faces`)."""

    found: Any  # bump_backend.faces.FaceSearchResult
    working_size: tuple[int, int]  # (width, height) of the image they were found in
    face_settings: Any = None  # the FaceFinderSettings that found them (None = defaults)
    thread: str = ""  # the thread that found them

    @property
    def faces(self) -> list:
        return list(self.found.faces)


def find_in_working(work: np.ndarray, sidecar, face_settings):
    """Faces in the working image (the sidecar scaled to it first)."""
    from bump_backend import faces as face_pipeline  # looked up per call (tests watch which thread calls it)

    h, w = work.shape[:2]
    return face_pipeline.find_faces(work, scale_sidecar(sidecar, w, h), face_settings)


def find_job_faces(image: str | Path | np.ndarray | Image.Image, sidecar, settings: BumpSettings,
                   face_settings=None) -> JobFaces:
    """Find a job's faces exactly as :meth:`BumpEngine.run` would, without the engine (CPU only).

    The image is scaled with the engine's own preprocessing (:func:`working_image`), so the faces
    are in the coordinates the engine uses; pass the result to ``run(..., faces=...)``. Safe to call
    from any thread (the server's prep pool), so face finding never holds the GPU worker.
    """
    work = working_image(load_rgb(image), settings.max_side)
    found = find_in_working(work, sidecar, face_settings)
    return JobFaces(found=found, working_size=(int(work.shape[1]), int(work.shape[0])), face_settings=face_settings,
                    thread=threading.current_thread().name)


@dataclass
class FacePassResult:
    """The working image with every face pasted back, and what each face did."""

    image: np.ndarray
    aligned: list = field(default_factory=list)  # AlignedFace per face (crop, transform, mask)
    crops: list[np.ndarray] = field(default_factory=list)  # the chosen result crop per face
    candidates: list[list[np.ndarray]] = field(default_factory=list)
    records: list[FaceRecord] = field(default_factory=list)
    skipped: list[Any] = field(default_factory=list)  # the finder's skipped faces, as record entries


def run_face_pass(engine: BumpEngine, work: np.ndarray, found, face_packages: list[Path | None], face_refs: list,
                  settings: BumpSettings, seed: int, progress: Progress | None, cancel: threading.Event | None,
                  character_prompts: Mapping[str, prompts.CharacterPrompt] | None = None) -> FacePassResult:
    """Bump every face of ``found`` with its package's references and paste the best candidates back."""
    from bump_backend.faces import align_face, paste_back  # cv2 and mediapipe: only when a face pass runs

    faces = list(found.faces)
    skipped = [s.to_dict() if hasattr(s, "to_dict") else str(s) for s in getattr(found, "skipped", [])]
    if not faces:
        return FacePassResult(image=work.copy(), skipped=skipped)
    aligned = [align_face(work, face, size=settings.face_size, padding=settings.face_padding) for face in faces]
    fs = settings.face_pass_settings()
    # Each face's (prompt, negative): its character's words added to the job's; each distinct pair encoded once.
    job_texts = (fs.prompt, fs.negative_prompt)
    face_texts = []
    for face in faces:
        entry = (character_prompts or {}).get(getattr(face, "character_id", None))
        face_texts.append(entry.applied_to(*job_texts) if entry is not None else job_texts)
    conds: dict[tuple[str, str], prompts.Conditioning] = {}
    for texts in face_texts:
        if texts not in conds:
            conds[texts] = prompts.encode_prompts(engine.pipe, *texts, clip_skip=settings.clip_skip)
    n = settings.candidates
    embeds, chosen_views = [], []
    for face, refs in zip(faces, face_refs, strict=True):
        e, chosen = engine.face_embeds(refs, float(face.yaw), settings) if engine.has_ip_adapter else (None, None)
        embeds.append(e)
        chosen_views.append(chosen)
    # Faces share a batch when their references stack (same number of views) and the adapter acts
    # on all or none of them (a face without a package runs at IP-Adapter scale 0); order is kept.
    # Different prompts share a batch too, but only with the same number of 75-token chunks:
    # Conditioning.stack pads a shorter prompt with the empty prompt's chunk, which the UNet's
    # cross-attention sees (it changes that face's bits), so a face's result would depend on how
    # long another character's prompt is.
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for i in range(len(faces)):
        key = (face_refs[i] is None, tuple(embeds[i][0].shape) if embeds[i] is not None else (),
               conds[face_texts[i]].prompt_embeds.shape[1])
        groups.setdefault(key, []).extend((i, k) for k in range(n))
    chunks = [(key[0], items[j:j + settings.batch_size]) for key, items in groups.items()
              for j in range(0, len(items), settings.batch_size)]
    outputs: dict[tuple[int, int], np.ndarray] = {}
    per_call = samplers.sampling_steps(fs.denoise, fs.steps)
    for c, (no_identity, chunk) in enumerate(chunks):
        ip = identity.batch_ip_embeds([embeds[i] for i, _ in chunk], fs.cfg > 1.0) if engine.has_ip_adapter else None
        clip = identity.batch_clip_embeds([embeds[i] for i, _ in chunk], fs.cfg > 1.0) if ip else None
        batch_cond = prompts.Conditioning.stack([conds[face_texts[i]] for i, _ in chunk])
        results = engine.img2img([aligned[i].crop for i, _ in chunk], batch_cond, ip,
                                 replace(fs, ip_adapter_scale=0.0) if no_identity else fs,
                                 [seed + k for _, k in chunk], stage="face", progress=progress, cancel=cancel,
                                 step_offset=c * per_call, total_steps=len(chunks) * per_call, clip_embeds=clip)
        outputs.update(dict(zip(chunk, results, strict=True)))

    out = FacePassResult(image=work.copy(), aligned=aligned, skipped=skipped)
    for i, face in enumerate(faces):
        refs, package = face_refs[i], face_packages[i]
        ranking = n > 1 and refs is not None and engine.embedder is not None
        references = engine.reference_identities(package, refs) if ranking else []
        cands = [outputs[(i, k)] for k in range(n)]
        scores: list[float] | None = None
        best = 0
        if ranking and references:
            scores = rank.score_candidates(engine.embedder, cands, references, faceid.points_in_crop(aligned[i]))
            best = rank.best_index(scores)
        out.image = paste_back(out.image, aligned[i], cands[best])
        out.crops.append(cands[best])
        out.candidates.append(cands)
        own_texts = face_texts[i] != job_texts  # else the job's face-pass prompts (settings)
        out.records.append(FaceRecord(
            face=face.to_dict(), character_id=getattr(face, "character_id", None),
            package=None if package is None else FacePackage(
                path=str(package.resolve()), id=refs.package_id if refs is not None else None,
                hash=refs.package_hash if refs is not None else None),
            seeds=tuple(seed + k for k in range(n)), chosen_seed=seed + best,
            scores=None if scores is None else tuple(round(s, 5) if np.isfinite(s) else None for s in scores),
            identity_score=None if scores is None or not np.isfinite(scores[best]) else round(scores[best], 5),
            ranked_by=getattr(engine.embedder, "name", None) if ranking else None, references=chosen_views[i],
            crop_sha256=image_sha256(cands[best]),
            ranking="no face found in the package views; first seed kept" if ranking and not references else None,
            prompt=face_texts[i][0] if own_texts else None, negative_prompt=face_texts[i][1] if own_texts else None))
    return out

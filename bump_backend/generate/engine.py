"""The bump engine: the model, kept warm, and one job's whole run (face pass, then whole-image pass).

One engine loads a model once and keeps it warm; ``run`` works on the image at a multiple of 8
within ``max_side``, runs the face pass (:mod:`face_pass`) and then bumps the whole image under
the inverted face mask, so faces are not processed twice, and builds the job's record once
(:mod:`record`). Progress is reported per sampler step; ``cancel`` stops between steps.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bump_backend.generate import identity, infotext, prompts, rank, samplers
from bump_backend.generate.face_pass import JobFaces, find_in_working, run_face_pass
from bump_backend.generate.images import load_rgb, resize_mask, to_input_size, working_image
from bump_backend.generate.models import ModelCache, ModelSpec, resolve_spec
from bump_backend.generate.record import BumpResult, build_record
from bump_backend.generate.settings import BumpSettings, PassSettings
from bump_contracts.errors import ContractError

Progress = Callable[[str, int, int], None]


class BumpCancelled(RuntimeError):
    """The job was cancelled between two sampler steps."""


@contextmanager
def _per_image_ip_embeds(pipe, active: bool):
    """Let ``ip_adapter_image_embeds`` hold one entry per image of the batch.

    diffusers' SD/SDXL pipelines treat the embeddings as one image's and repeat them over the batch
    (``prepare_ip_adapter_image_embeds(..., batch_size * num_images_per_prompt, ...)``); with a
    per-face batch that repetition makes the IP-Adapter attention view each sample's references as
    the concatenation of several faces' (every face in a batch would see every face's package and
    pose). ``identity.batch_ip_embeds`` already builds the final ``[negatives; positives]`` layout,
    so for the call the pipeline takes it as given.
    """
    if not active:
        yield
        return

    def as_given(_image, embeds, device, _num_images_per_prompt, _guidance):
        return [e.to(device=device) for e in embeds]

    pipe.prepare_ip_adapter_image_embeds = as_given  # instance attribute shadows the method
    try:
        yield
    finally:
        del pipe.prepare_ip_adapter_image_embeds


def random_seed() -> int:
    return random.SystemRandom().randrange(0, 2**32)


@functools.lru_cache(maxsize=1)
def _default_ranker() -> rank.IdentityEmbedder:
    return rank.DlibEmbedder()


class BumpEngine:
    """Loads a model once, keeps it warm, and runs bump jobs one at a time (thread-safe)."""

    def __init__(self, model: str | ModelSpec | None = None, *,
                 embedder: rank.IdentityEmbedder | str | None = "auto", reference_cache_size: int = 8) -> None:
        """``embedder`` ranks candidates (``candidates`` > 1): ``"auto"`` is the FaceID model's own
        ArcFace when one is loaded, else dlib's ResNet; None keeps the first seed unranked."""
        self.spec = resolve_spec(model)
        self._models = ModelCache()
        self.references = identity.ReferenceCache(reference_cache_size)
        self._embedder_choice = embedder
        self._identity_refs: dict[str, list[np.ndarray]] = {}
        self._blank_embeds: tuple[torch.Tensor, torch.Tensor] | None = None
        self._lock = threading.RLock()
        self.loaded = self._models.get(self.spec)
        self._scheduler_config = dict(self.loaded.pipe.scheduler.config)

    # -- model management ----------------------------------------------------------------------
    def switch(self, model: str | ModelSpec) -> None:
        """Load another model, releasing the current one first (no two in memory at once)."""
        with self._lock:
            self.spec = resolve_spec(model)
            self.references.clear()
            self._identity_refs.clear()  # the "auto" embedder may change with the model
            self._blank_embeds = None
            self.loaded = self._models.get(self.spec)
            self._scheduler_config = dict(self.loaded.pipe.scheduler.config)

    def close(self) -> None:
        with self._lock:
            self._models.clear()
            self.references.clear()

    @property
    def pipe(self):
        return self.loaded.pipe

    @property
    def has_ip_adapter(self) -> bool:
        return self.loaded.ip_adapter_kind is not None

    @property
    def lock(self) -> threading.RLock:
        """The engine's job lock (re-entrant): a caller that drives ``img2img`` itself (the sequence
        bumper) holds it around its calls, so no other job switches the model or runs in between."""
        return self._lock

    @property
    def max_clip_skip(self) -> int:
        """The largest ``clip_skip`` this model allows: its (first) text encoder's layer count.

        ``clip_skip`` n takes the n-th layer's output from the end; the contract allows 1-12 (SD 1.5
        and SDXL have 12 layers), but a model with fewer layers (the tiny test models have 2) has
        fewer to skip.
        """
        encoder = self.pipe.text_encoder
        return int(getattr(encoder.config, "num_hidden_layers", 12))

    def check_settings(self, settings: BumpSettings) -> None:
        """Refuse settings the loaded model cannot run, before anything is computed (ContractError)."""
        limit = self.max_clip_skip
        if settings.clip_skip > limit:
            raise ContractError(f"params.clip_skip (Clip skip) is {settings.clip_skip}, above this model's limit of {limit} "
                                f"(its text encoder has {limit} layers)", "params.clip_skip")

    # -- one img2img batch ---------------------------------------------------------------------
    def img2img(self, images: list[np.ndarray], cond: prompts.Conditioning, ip_embeds: list[torch.Tensor] | None,
                settings: PassSettings, seeds: list[int], *, stage: str = "img2img",
                progress: Progress | None = None, cancel: threading.Event | None = None,
                step_offset: int = 0, total_steps: int | None = None,
                clip_embeds: torch.Tensor | None = None) -> list[np.ndarray]:
        """Run one batch through the pipeline: one seed per image, A1111's step arithmetic.

        ``clip_embeds``: FaceID-plus adapters' CLIP hidden states, laid out like ``ip_embeds``
        (:func:`identity.batch_clip_embeds`); diffusers reads them from the projection layer.
        """
        with self._lock:  # reentrant: ``run`` already holds it; the sequence job's bumper does not
            return self._img2img(images, cond, ip_embeds, settings, seeds, stage=stage, progress=progress,
                                 cancel=cancel, step_offset=step_offset, total_steps=total_steps,
                                 clip_embeds=clip_embeds)

    def _img2img(self, images, cond, ip_embeds, settings: PassSettings, seeds: list[int], *, stage: str,
                 progress: Progress | None, cancel: threading.Event | None, step_offset: int,
                 total_steps: int | None, clip_embeds: torch.Tensor | None) -> list[np.ndarray]:
        pipe = self.pipe
        if cancel is not None and cancel.is_set():
            raise BumpCancelled(f"cancelled before {stage}")
        pipe.scheduler = samplers.make_scheduler(settings.sampler, self._scheduler_config, seed=seeds[0])
        strength = samplers.img2img_strength(settings.denoise, settings.steps)
        generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        per_call = samplers.sampling_steps(settings.denoise, settings.steps)
        total = total_steps if total_steps is not None else per_call

        def on_step(_pipe, i, _t, kwargs):
            # Heun-type schedulers call back twice per step; count sampler steps, not UNet calls.
            done = min(per_call, (i + 1) * per_call // max(1, _pipe.num_timesteps))
            if progress is not None:
                progress(stage, step_offset + done, total)
            if cancel is not None and cancel.is_set():
                raise BumpCancelled(f"cancelled during {stage} at step {step_offset + done}/{total}")
            return kwargs

        kwargs: dict[str, Any] = dict(cond.kwargs())
        if self.has_ip_adapter:
            pipe.set_ip_adapter_scale(settings.ip_adapter_scale)
            kwargs["ip_adapter_image_embeds"] = ip_embeds
            if self.loaded.ip_adapter_kind in ("faceid-plus", "faceid-plusv2"):
                projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
                projection.clip_embeds = clip_embeds.to(device=pipe.unet.device, dtype=pipe.unet.dtype)
                projection.shortcut = self.loaded.ip_adapter_kind == "faceid-plusv2"
        batch = [Image.fromarray(img) for img in images]
        with torch.inference_mode(), _per_image_ip_embeds(pipe, ip_embeds is not None and len(images) > 1):
            out = pipe(image=batch, strength=strength, num_inference_steps=settings.steps,
                       guidance_scale=settings.cfg, generator=generators, output_type="np",
                       callback_on_step_end=on_step, **kwargs).images
        return [np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8) for img in out]

    # -- identity ------------------------------------------------------------------------------
    def _blank(self) -> tuple[torch.Tensor, ...]:
        """Embeddings of a white image: what the adapter sees (at scale 0) when there is no package."""
        if self._blank_embeds is None:
            kind = self.loaded.ip_adapter_kind or ""
            if kind.startswith("faceid"):  # already (1, 1, ...): a zero identity
                self._blank_embeds = identity.blank_faceid_embeds(self.pipe, kind, self.face_embedder.dim)
            else:
                white = Image.new("RGB", (224, 224), (255, 255, 255))
                self._blank_embeds = tuple(e[None] for e in identity.encode_views(self.pipe, [white]))
        return self._blank_embeds

    def package_embeds(self, package: Path | None, yaw: float | None, settings: BumpSettings
                       ) -> tuple[torch.Tensor, ...] | None:
        """One face's identity embeddings for ``package`` at ``yaw`` (the blank identity without a
        package; None without an IP-Adapter). Takes the engine's lock, so a caller outside ``run``
        (the sequence job) never reads the model or its caches while another thread switches them."""
        with self._lock:
            if not self.has_ip_adapter:
                return None
            refs = None if package is None else self.references.get(
                self.pipe, self.spec.key(), package, self.face_embedder, self.loaded.ip_adapter_kind)
            return self.face_embeds(refs, yaw, settings)[0]

    def face_embeds(self, refs: identity.ReferenceViews | None, yaw: float | None, settings: BumpSettings
                     ) -> tuple[tuple[torch.Tensor, ...], dict[str, Any] | None]:
        """(positive, negative[, clip positive, clip negative]) of shape (1, images, ...) for one face."""
        if refs is None:
            return self._blank(), None
        pos, neg, chosen = identity.select_embeds(refs, yaw, settings.pose_mode, settings.pose_views)
        clip = identity.select_clip_embeds(refs, yaw, settings.pose_mode, settings.pose_views)
        return ((pos, neg) if clip is None else (pos, neg, *clip)), chosen

    @property
    def embedder(self) -> rank.IdentityEmbedder | None:
        """The identity ranker in use (see ``__init__``)."""
        if self._embedder_choice == "auto":
            return self.face_embedder or _default_ranker()
        return self._embedder_choice

    @property
    def face_embedder(self):
        """FaceID's ArcFace model (None for CLIP-image adapters)."""
        return self.loaded.extra.get("face_embedder")

    def reference_identities(self, package: Path, refs: identity.ReferenceViews) -> list[np.ndarray]:
        if refs.package_hash not in self._identity_refs:
            embedder = self.embedder
            ref_embedder = replace(embedder, require_detection=True) if isinstance(embedder, rank.DlibEmbedder) \
                else embedder
            manifest = identity.load_package(package)
            images = [np.asarray(Image.open(package / v.file).convert("RGB")) for v in manifest.views]
            self._identity_refs[refs.package_hash] = rank.embed_references(ref_embedder, images)
        return self._identity_refs[refs.package_hash]

    # -- the job -------------------------------------------------------------------------------
    def run(self, image: str | Path | np.ndarray | Image.Image, package: str | Path | None = None, sidecar=None,
            settings: BumpSettings | None = None, progress: Progress | None = None,
            cancel: threading.Event | None = None, *, face_settings=None, input_path: str | None = None,
            faces: JobFaces | Any | None = None, packages: Mapping[str, str | Path] | None = None,
            character_prompts: Mapping[str, prompts.CharacterPrompt | Mapping[str, str]] | None = None
            ) -> BumpResult:
        """Bump one image. ``sidecar`` is a ``RenderSidecar`` (or None to detect faces).

        ``faces``: faces found beforehand (:func:`find_job_faces`, or a ``FaceSearchResult`` in
        working-image pixels); used as they are, no face finding runs here. ``packages``: a
        package folder per character id; a face whose ``character_id`` is in it is bumped with
        that package, every other face with ``package`` (the default).

        ``character_prompts``: a ``CharacterPrompt`` (or ``{"prompt", "negative_prompt"}``) per
        character id, so each face in a multi-character shot is described by its own words. For a
        face whose ``character_id`` has an entry, the face pass's prompt is the job's face-pass
        prompt, ``", "``, then the character's (job-level style still applies), and its negative is
        the job's face negative extended with the character's (``prompts.negative_prompt``, no
        duplicates). Other faces, and the whole-image pass, use the job's prompts as before.
        """
        settings = settings or BumpSettings()
        if input_path is None and isinstance(image, (str, Path)):
            input_path = str(Path(image).resolve())
        character_packages = {str(cid): Path(path) for cid, path in (packages or {}).items()}
        per_character = {str(cid): prompts.CharacterPrompt.coerce(p) for cid, p in (character_prompts or {}).items()}
        with self._lock:
            self.check_settings(settings)  # before the image is even read: fails fast, names the field
            return self._run(load_rgb(image), Path(package) if package else None, sidecar, settings, progress,
                             cancel, face_settings, input_path, faces, character_packages, per_character)

    def _refs(self, package: Path | None, cache: dict[Path, Any], timings: dict[str, float]):
        """A package's encoded views (None without a package or an IP-Adapter), once per job."""
        if package is None or not self.has_ip_adapter:
            return None
        if package not in cache:
            t = time.perf_counter()
            cache[package] = self.references.get(self.pipe, self.spec.key(), package, self.face_embedder,
                                                 self.loaded.ip_adapter_kind)
            timings["references_s"] = timings.get("references_s", 0.0) + time.perf_counter() - t
        return cache[package]

    def _run(self, source: np.ndarray, package: Path | None, sidecar, settings: BumpSettings,
             progress: Progress | None, cancel: threading.Event | None, face_settings, input_path: str | None,
             faces: JobFaces | Any | None = None, packages: dict[str, Path] | None = None,
             character_prompts: dict[str, prompts.CharacterPrompt] | None = None) -> BumpResult:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        packages = packages or {}
        character_prompts = character_prompts or {}
        seed = settings.seed if settings.seed != -1 else random_seed()
        settings = replace(settings, seed=seed)
        work = working_image(source, settings.max_side)
        height, width = work.shape[:2]
        found, face_search = None, None
        if settings.face_pass:
            if isinstance(faces, JobFaces):
                if tuple(faces.working_size) != (width, height):
                    raise ValueError(f"faces were found in a {faces.working_size[0]}x{faces.working_size[1]} image "
                                     f"but this job works at {width}x{height} (max_side {settings.max_side}): find "
                                     "them with find_job_faces and the same settings")
                found, face_search = faces.found, {"found_by": "caller", "thread": faces.thread or None}
                if face_settings is None:
                    face_settings = faces.face_settings
            elif faces is not None:
                found, face_search = faces, {"found_by": "caller", "thread": None}
            else:
                found = find_in_working(work, sidecar, face_settings)
                face_search = {"found_by": "engine", "thread": threading.current_thread().name}
                timings["faces_s"] = found.ms / 1000.0
            face_search.update(ms=round(float(found.ms), 1), detector_calls=int(getattr(found, "detector_calls", 0)))

        ref_cache: dict[Path, Any] = {}
        refs = self._refs(package, ref_cache, timings)

        result_image = work.copy()
        face_records: list = []
        aligned_faces: list[Any] = []
        chosen_crops: list[np.ndarray] = []
        all_candidates: list[list[np.ndarray]] = []
        skipped: list[Any] = []
        whole_package, whole_package_refs = package, refs
        if settings.face_pass:
            t = time.perf_counter()
            face_packages = [packages.get(f.character_id, package) if f.character_id is not None else package
                             for f in found.faces]
            face_refs = [self._refs(p, ref_cache, timings) for p in face_packages]
            done = run_face_pass(self, work, found, face_packages, face_refs, settings, seed, progress, cancel,
                                 character_prompts)
            result_image, aligned_faces, chosen_crops = done.image, done.aligned, done.crops
            all_candidates, face_records, skipped = done.candidates, done.records, done.skipped
            timings["face_pass_s"] = time.perf_counter() - t
            if package is None and face_packages and face_packages[0] is not None:
                # No default package: the whole pass takes the main (first) face's identity.
                whole_package, whole_package_refs = face_packages[0], face_refs[0]
        mask = np.zeros((height, width), np.float32)
        if aligned_faces:
            from bump_backend.faces import combined_mask  # cv2: only when a face pass ran

            mask = combined_mask(work.shape, aligned_faces)

        main_yaw = face_records[0].face["yaw"] if face_records else None
        whole_refs = None
        if settings.whole_pass:
            t = time.perf_counter()
            whole = settings.whole()
            if whole_package_refs is None:  # no identity: the adapter (if loaded) must not act
                whole = replace(whole, ip_adapter_scale=0.0)
            cond = prompts.encode_prompts(self.pipe, whole.prompt, whole.negative_prompt, clip_skip=settings.clip_skip)
            ip = clip = None
            if self.has_ip_adapter:
                whole_embeds, whole_refs = self.face_embeds(whole_package_refs, main_yaw, settings)
                if whole_refs is not None and whole_package_refs is not refs:
                    whole_refs = {**whole_refs, "package": whole_package_refs.package_id}
                ip = identity.batch_ip_embeds([whole_embeds], whole.cfg > 1.0)
                clip = identity.batch_clip_embeds([whole_embeds], whole.cfg > 1.0)
            bumped = self.img2img([result_image], cond, ip, whole, [seed], stage="whole", progress=progress,
                                  cancel=cancel, clip_embeds=clip)[0]
            m = mask[:, :, None]
            result_image = np.clip(bumped.astype(np.float32) * (1.0 - m) + result_image.astype(np.float32) * m + 0.5,
                                   0, 255).astype(np.uint8)
            timings["whole_pass_s"] = time.perf_counter() - t
        # Back to the input's exact size; pixels no pass touched stay the input's own.
        bumped = None if settings.whole_pass else mask
        output = to_input_size(result_image, source, bumped)
        mask = resize_mask(mask, int(source.shape[1]), int(source.shape[0]))
        timings["total_s"] = time.perf_counter() - started

        record = build_record(
            loaded=self.loaded, settings=settings, source=source, input_path=input_path, work_size=(width, height),
            output=output, package=package, refs=refs, sidecar=sidecar, faces=face_records, skipped=skipped,
            whole_refs=whole_refs, timings=timings, packages=packages, ref_cache=ref_cache,
            character_prompts=character_prompts, whole_package=whole_package, face_search=face_search,
            face_settings=face_settings)
        text = infotext.bump_infotext(settings, record)
        return BumpResult(image=output, face_crops=chosen_crops,
                          face_inputs=[a.crop for a in aligned_faces], mask=mask, record=record, infotext=text,
                          candidates=all_candidates)

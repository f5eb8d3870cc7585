"""The bump: a face pass (FacePop's method) then a whole-image pass, with the package as identity.

Faces are found (from the render sidecar's geometry where there is one), aligned upright and
upscaled, bumped together in batches with pose-matched package references, ranked by identity
when several seeds are tried, and pasted back through their masks. The whole image is then
bumped and composited under the combined face mask, so faces are not processed twice. One engine
loads the models once and keeps them warm; ``run`` reports progress per sampler step and stops
between steps when cancelled.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import random
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bump_backend.generate import faceid, identity, infotext, prompts, rank, samplers
from bump_backend.generate.models import LoadedModels, ModelCache, ModelSpec, resolve_spec
from bump_backend.generate.settings import BumpSettings, PassSettings

RECORD_SCHEMA = "bump-record"
RECORD_VERSION = 1
Progress = Callable[[str, int, int], None]


class BumpCancelled(RuntimeError):
    """The job was cancelled between two sampler steps."""


@dataclass
class BumpResult:
    """The bumped image and everything that explains it."""

    image: np.ndarray  # HxWx3 uint8
    face_crops: list[np.ndarray]  # the chosen processed crop per face (upright, face_size)
    face_inputs: list[np.ndarray]  # the aligned crop each face pass started from
    mask: np.ndarray  # float32 HxW, the combined face mask (zeros without a face pass)
    record: dict[str, Any]
    infotext: str
    candidates: list[list[np.ndarray]] = field(default_factory=list)

    def save(self, out_dir: str | Path, stem: str = "bump") -> dict[str, Path]:
        """Write the result PNG (with infotext + record), face crops, the mask and the JSON record."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"image": infotext.save_png(out / f"{stem}.png", self.image, self.infotext, self.record)}
        paths["mask"] = infotext.save_png(out / f"{stem}_mask.png",
                                          np.clip(self.mask * 255.0 + 0.5, 0, 255).astype(np.uint8))
        for i, (before, after) in enumerate(zip(self.face_inputs, self.face_crops, strict=True)):
            paths[f"face{i}"] = infotext.save_png(out / f"{stem}_face{i}.png", after)
            paths[f"face{i}_input"] = infotext.save_png(out / f"{stem}_face{i}_input.png", before)
        paths["record"] = infotext.write_record(out / f"{stem}.json", self.record)
        return paths


def image_sha256(image: np.ndarray) -> str:
    """Hash of the pixels (shape included), independent of how the PNG was compressed."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def load_rgb(image: str | Path | np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, np.ndarray):
        array = image
    else:
        if isinstance(image, (str, Path)):
            with Image.open(image) as pil:
                image = pil.convert("RGB")
        array = np.asarray(image.convert("RGB"))
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.dtype == np.uint16:
        array = (array / 257.0 + 0.5).astype(np.uint8)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] < 3:
        raise ValueError(f"expected an RGB uint8 image, got {array.shape} {array.dtype}")
    return np.ascontiguousarray(array[:, :, :3])


def working_size(width: int, height: int, max_side: int, multiple: int = 8) -> tuple[int, int]:
    """Scale down to ``max_side`` (never up) and round to the latent grid."""
    scale = min(1.0, max_side / max(width, height))
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    return w, h


def scale_sidecar(sidecar, width: int, height: int):
    """The sidecar's face geometry in the working image's pixels."""
    if sidecar is None or (sidecar.width, sidecar.height) == (width, height):
        return sidecar
    sx, sy = width / sidecar.width, height / sidecar.height

    def pt(p):
        return (p[0] * sx, p[1] * sy)

    faces = []
    for face in sidecar.faces:
        g = face.geometry
        b = g.face_box
        geometry = replace(g, head_centre=pt(g.head_centre), right_eye=pt(g.right_eye), left_eye=pt(g.left_eye),
                           face_box=(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy),
                           eye_distance_px=g.eye_distance_px * (sx + sy) / 2)
        faces.append(replace(face, geometry=geometry))
    return replace(sidecar, width=width, height=height, faces=tuple(faces))


def working_image(source: np.ndarray, max_side: int) -> np.ndarray:
    """The image the engine works on: scaled down to ``max_side`` and to multiples of 8 (pure, any thread)."""
    h0, w0 = source.shape[:2]
    width, height = working_size(w0, h0, max_side)
    if (width, height) == (w0, h0):
        return source
    return np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.LANCZOS))


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


def _find_in_working(work: np.ndarray, sidecar, face_settings):
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
    found = _find_in_working(work, sidecar, face_settings)
    return JobFaces(found=found, working_size=(int(work.shape[1]), int(work.shape[0])), face_settings=face_settings,
                    thread=threading.current_thread().name)


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


def runtime_info(loaded: LoadedModels) -> dict[str, Any]:
    import diffusers
    import transformers

    return {
        "device": str(loaded.device),
        "device_name": torch.cuda.get_device_name(loaded.device) if loaded.device.type == "cuda" else platform.processor(),
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }


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

    def _face_embeds(self, refs: identity.ReferenceViews | None, yaw: float | None, settings: BumpSettings
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

    def _reference_identities(self, package: Path, refs: identity.ReferenceViews) -> list[np.ndarray]:
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
                found = _find_in_working(work, sidecar, face_settings)
                face_search = {"found_by": "engine", "thread": threading.current_thread().name}
                timings["faces_s"] = found.ms / 1000.0
            face_search.update(ms=round(float(found.ms), 1), detector_calls=int(getattr(found, "detector_calls", 0)))

        ref_cache: dict[Path, Any] = {}
        refs = self._refs(package, ref_cache, timings)

        result_image = work.copy()
        face_records: list[dict[str, Any]] = []
        aligned_faces: list[Any] = []
        chosen_crops: list[np.ndarray] = []
        all_candidates: list[list[np.ndarray]] = []
        skipped: list[dict[str, Any]] = []
        whole_package, whole_package_refs = package, refs
        if settings.face_pass:
            t = time.perf_counter()
            face_packages = [packages.get(f.character_id, package) if f.character_id is not None else package
                             for f in found.faces]
            face_refs = [self._refs(p, ref_cache, timings) for p in face_packages]
            result_image, aligned_faces, chosen_crops, all_candidates, face_records, skipped = self._face_pass(
                work, found, face_packages, face_refs, settings, seed, progress, cancel, character_prompts)
            timings["face_pass_s"] = time.perf_counter() - t
            if package is None and face_packages and face_packages[0] is not None:
                # No default package: the whole pass takes the main (first) face's identity.
                whole_package, whole_package_refs = face_packages[0], face_refs[0]
        mask = np.zeros((height, width), np.float32)
        if aligned_faces:
            from bump_backend.faces import combined_mask

            mask = combined_mask(work.shape, aligned_faces)

        main_yaw = face_records[0]["face"]["yaw"] if face_records else None
        whole_refs = None
        if settings.whole_pass:
            t = time.perf_counter()
            whole = settings.whole()
            if whole_package_refs is None:  # no identity: the adapter (if loaded) must not act
                whole = replace(whole, ip_adapter_scale=0.0)
            cond = prompts.encode_prompts(self.pipe, whole.prompt, whole.negative_prompt, clip_skip=settings.clip_skip)
            ip = clip = None
            if self.has_ip_adapter:
                whole_embeds, whole_refs = self._face_embeds(whole_package_refs, main_yaw, settings)
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
        timings["total_s"] = time.perf_counter() - started

        record = self._record(source, work, result_image, package, refs, sidecar, settings, face_records, skipped,
                              whole_refs, timings, input_path)
        record["packages"] = {cid: self._package_record(path, ref_cache.get(path)) for cid, path in packages.items()}
        record["character_prompts"] = {cid: p.to_dict() for cid, p in character_prompts.items()}  # replayed by reproduce
        record["whole_pass_package"] = None if whole_package is None else str(whole_package.resolve())
        record["face_search"] = face_search
        if face_settings is not None:
            import dataclasses

            record["face_finder"] = dataclasses.asdict(face_settings)
        text = self.infotext(settings, record)
        return BumpResult(image=result_image, face_crops=chosen_crops,
                          face_inputs=[a.crop for a in aligned_faces], mask=mask, record=record, infotext=text,
                          candidates=all_candidates)

    def _face_pass(self, work, found, face_packages: list[Path | None], face_refs: list, settings: BumpSettings,
                   seed: int, progress, cancel, character_prompts: Mapping[str, prompts.CharacterPrompt] | None = None):
        from bump_backend.faces import align_face, paste_back

        faces = list(found.faces)
        skipped = [s.to_dict() if hasattr(s, "to_dict") else str(s) for s in getattr(found, "skipped", [])]
        if not faces:
            return work.copy(), [], [], [], [], skipped
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
                conds[texts] = prompts.encode_prompts(self.pipe, *texts, clip_skip=settings.clip_skip)
        n = settings.candidates
        embeds, chosen_views = [], []
        for face, refs in zip(faces, face_refs, strict=True):
            e, chosen = self._face_embeds(refs, float(face.yaw), settings) if self.has_ip_adapter else (None, None)
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
            ip = identity.batch_ip_embeds([embeds[i] for i, _ in chunk], fs.cfg > 1.0) if self.has_ip_adapter else None
            clip = identity.batch_clip_embeds([embeds[i] for i, _ in chunk], fs.cfg > 1.0) if ip else None
            batch_cond = prompts.Conditioning.stack([conds[face_texts[i]] for i, _ in chunk])
            results = self.img2img([aligned[i].crop for i, _ in chunk], batch_cond, ip,
                                   replace(fs, ip_adapter_scale=0.0) if no_identity else fs,
                                   [seed + k for _, k in chunk], stage="face", progress=progress, cancel=cancel,
                                   step_offset=c * per_call, total_steps=len(chunks) * per_call, clip_embeds=clip)
            outputs.update(dict(zip(chunk, results, strict=True)))

        image = work.copy()
        crops, candidates, records = [], [], []
        for i, face in enumerate(faces):
            refs, package = face_refs[i], face_packages[i]
            ranking = n > 1 and refs is not None and self.embedder is not None
            references = self._reference_identities(package, refs) if ranking else []
            cands = [outputs[(i, k)] for k in range(n)]
            scores: list[float] | None = None
            best = 0
            if ranking and references:
                scores = rank.score_candidates(self.embedder, cands, references, faceid.points_in_crop(aligned[i]))
                best = rank.best_index(scores)
            image = paste_back(image, aligned[i], cands[best])
            crops.append(cands[best])
            candidates.append(cands)
            record = {
                "face": face.to_dict(),
                "character_id": getattr(face, "character_id", None),
                "package": None if package is None else {"id": refs.package_id if refs is not None else None,
                                                         "hash": refs.package_hash if refs is not None else None,
                                                         "path": str(package.resolve())},
                "seeds": [seed + k for k in range(n)],
                "chosen_seed": seed + best,
                "scores": None if scores is None else [round(s, 5) if np.isfinite(s) else None for s in scores],
                "identity_score": None if scores is None or not np.isfinite(scores[best]) else round(scores[best], 5),
                "ranked_by": getattr(self.embedder, "name", None) if ranking else None,
                "references": chosen_views[i],
                "crop_sha256": image_sha256(cands[best]),
            }
            if ranking and not references:
                record["ranking"] = "no face found in the package views; first seed kept"
            if face_texts[i] != job_texts:  # absent: the job's face-pass prompts (settings)
                record["prompt"], record["negative_prompt"] = face_texts[i]
            records.append(record)
        return image, aligned, crops, candidates, records, skipped

    # -- records -------------------------------------------------------------------------------
    @staticmethod
    def _package_record(package: Path | None, refs) -> dict[str, Any] | None:
        if package is None:
            return None
        if refs is None:
            return {"path": str(package.resolve())}
        return {**refs.record(), "path": str(package.resolve())}

    def _record(self, source, work, out, package, refs, sidecar, settings: BumpSettings, faces, skipped,
                whole_refs, timings, input_path) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "schema": RECORD_SCHEMA,
            "schema_version": RECORD_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": settings.to_dict(),
            "seed": settings.seed,
            "model": {**loaded.spec.to_dict(), "hash": loaded.model_hash, "name": loaded.model_name,
                      "family": loaded.family, "ip_adapter_kind": loaded.ip_adapter_kind},
            "package": self._package_record(package, refs),
            "input": {"path": input_path, "sha256": image_sha256(source), "width": int(source.shape[1]),
                      "height": int(source.shape[0])},
            "working_size": [int(work.shape[1]), int(work.shape[0])],
            "sidecar": sidecar.to_dict() if sidecar is not None else None,
            "faces": faces,
            "skipped_faces": skipped,
            "whole_pass_references": whole_refs,
            "output": {"sha256": image_sha256(out), "width": int(out.shape[1]), "height": int(out.shape[0])},
            "runtime": runtime_info(loaded),
            "timings": {k: round(v, 4) for k, v in timings.items()},
        }

    def infotext(self, settings: BumpSettings, record: dict[str, Any]) -> str:
        """A1111 ``parameters`` text: its own keys first, then ours."""
        fs = settings.face_pass_settings()
        faces = record["faces"]
        scores = [f["identity_score"] for f in faces if f.get("identity_score") is not None]
        package = record.get("package") or {}
        params: dict[str, Any] = {
            "Steps": settings.steps,
            "Sampler": settings.sampler,
            "CFG scale": settings.cfg,
            "Seed": settings.seed,
            "Size": f"{record['working_size'][0]}x{record['working_size'][1]}",
            "Model hash": record["model"]["hash"],
            "Model": record["model"]["name"],
            "Denoising strength": settings.denoise,
            "Clip skip": settings.clip_skip if settings.clip_skip > 1 else None,
            "Whole pass": settings.whole_pass,
            "Face pass": settings.face_pass,
            "Faces": len(faces) if settings.face_pass else None,
        }
        if settings.face_pass:
            params.update({
                "Face steps": fs.steps, "Face CFG scale": fs.cfg, "Face denoising strength": fs.denoise,
                "Face sampler": fs.sampler if fs.sampler != settings.sampler else None,
                "Face prompt": fs.prompt if fs.prompt != settings.prompt else None,
                "Face negative prompt": fs.negative_prompt if fs.negative_prompt != settings.negative_prompt else None,
                "Face size": settings.face_size, "Face padding": settings.face_padding,
                "Face candidates": settings.candidates,
            })
        if self.has_ip_adapter:
            params.update({
                "IP-Adapter": Path(self.spec.ip_adapter_weight).stem,
                "IP-Adapter scale": settings.ip_adapter_scale,
                "IP-Adapter face scale": fs.ip_adapter_scale if settings.face_pass else None,
                "Pose mode": settings.pose_mode, "Pose views": settings.pose_views,
            })
        params.update({
            "Reference package": package.get("id"),
            "Reference hash": package["hash"][:10] if package.get("hash") else None,
            "Character packages": ", ".join(
                f"{cid}: {(p or {}).get('id') or Path((p or {}).get('path', '?')).name}"
                for cid, p in sorted((record.get("packages") or {}).items())) or None,
            # Only who had their own face prompt (the texts can be long; they are in the bump_record chunk).
            "Character prompts": ", ".join(sorted({str(f.get("character_id")) for f in faces if "prompt" in f}))
            or None,
            "Identity score": ", ".join(f"{s:.3f}" for s in scores) if scores else None,
            "Version": "bump-studio",
        })
        return infotext.build_infotext(settings.prompt, settings.negative_prompt, params)

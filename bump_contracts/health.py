"""``GET /v1/health``: is the backend up and, for an authorised caller, what it can do.

Typed so the add-on greys out what the running backend cannot do before the user tries, and so
an unauthenticated caller learns only that the server is alive (no paths, no machine details):
the server fills :class:`Capabilities` and the model fields only for callers with the token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bump_contracts.errors import ContractError

MODEL_STATES = ("loading", "ready", "failed")


def _typed(data: dict[str, Any], key: str, kinds: tuple[type, ...], where: str, *, optional: bool = True) -> Any:
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise ContractError(f"{where}.{key}: missing", f"{where}.{key}")
    if isinstance(value, bool) and bool not in kinds:
        raise ContractError(f"{where}.{key}: expected {kinds[0].__name__}, got a boolean", f"{where}.{key}")
    if not isinstance(value, kinds):
        raise ContractError(f"{where}.{key}: expected {kinds[0].__name__}, got {type(value).__name__}", f"{where}.{key}")
    return value


def _names(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ContractError(f"{where}.{key}: expected a list of names", f"{where}.{key}")
    return tuple(value)


@dataclass(frozen=True)
class ModelInfo:
    """The loaded model as a user names it (a preset, a file name), never an absolute path."""

    name: str
    family: str  # sd15 | sdxl
    dtype: str = ""
    hash: str = ""
    ip_adapter_kind: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> ModelInfo:
        if not isinstance(data, dict):
            raise ContractError("model: expected an object", "model")
        return cls(name=_typed(data, "name", (str,), "model", optional=False),
                   family=_typed(data, "family", (str,), "model", optional=False),
                   dtype=_typed(data, "dtype", (str,), "model") or "",
                   hash=_typed(data, "hash", (str,), "model") or "",
                   ip_adapter_kind=_typed(data, "ip_adapter_kind", (str,), "model"))


@dataclass(frozen=True)
class Capabilities:
    """What the running backend can do now; a client disables everything else."""

    ip_adapter_kinds: tuple[str, ...] = ()  # kinds of identity adapter it can run ("plus-face", "faceid-plusv2", ...)
    faceid: bool = False  # an ArcFace face embedder is configured
    sdxl: bool = False
    loras: tuple[str, ...] = ()  # LoRA names loaded with the model
    samplers: tuple[str, ...] = ()
    device: str = ""  # "cuda:0", "cpu", "mps"
    free_vram_mb: int | None = None
    max_side: int | None = None  # the largest work size this server accepts
    max_face_size: int | None = None
    max_clip_skip: int | None = None  # the loaded model's text-encoder depth (the contract allows 1-12)

    @classmethod
    def from_dict(cls, data: Any) -> Capabilities:
        where = "capabilities"
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected an object", where)
        return cls(ip_adapter_kinds=_names(data, "ip_adapter_kinds", where),
                   faceid=bool(_typed(data, "faceid", (bool,), where)),
                   sdxl=bool(_typed(data, "sdxl", (bool,), where)),
                   loras=_names(data, "loras", where), samplers=_names(data, "samplers", where),
                   device=_typed(data, "device", (str,), where) or "",
                   free_vram_mb=_typed(data, "free_vram_mb", (int,), where),
                   max_side=_typed(data, "max_side", (int,), where),
                   max_face_size=_typed(data, "max_face_size", (int,), where),
                   max_clip_skip=_typed(data, "max_clip_skip", (int,), where))


@dataclass(frozen=True)
class Health:
    """The health document. Callers without the token get only the first four fields."""

    status: str
    version: str
    contract_version: int
    auth_required: bool
    # below: only for callers with the token (or on a server without one)
    model_state: str | None = None  # one of MODEL_STATES
    model: ModelInfo | None = None
    model_error: str | None = None
    queue_length: int | None = None
    queue_capacity: int | None = None
    running: str | None = None
    capabilities: Capabilities | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ready(self) -> bool:
        return self.model_state == "ready"

    @classmethod
    def from_dict(cls, data: Any) -> Health:
        where = "health"
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected an object", where)
        state = _typed(data, "model_state", (str,), where)
        if state is not None and state not in MODEL_STATES:
            raise ContractError(f"{where}.model_state: one of {', '.join(MODEL_STATES)}, got {state!r}",
                                f"{where}.model_state")
        model = data.get("model")
        caps = data.get("capabilities")
        known = set(cls.__dataclass_fields__)
        return cls(status=_typed(data, "status", (str,), where, optional=False),
                   version=_typed(data, "version", (str,), where, optional=False),
                   contract_version=_typed(data, "contract_version", (int,), where, optional=False),
                   auth_required=bool(_typed(data, "auth_required", (bool,), where)),
                   model_state=state,
                   model=ModelInfo.from_dict(model) if model else None,
                   model_error=_typed(data, "model_error", (str,), where),
                   queue_length=_typed(data, "queue_length", (int,), where),
                   queue_capacity=_typed(data, "queue_capacity", (int,), where),
                   running=_typed(data, "running", (str,), where),
                   capabilities=Capabilities.from_dict(caps) if caps is not None else None,
                   extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        for key in ("ip_adapter_kinds", "loras", "samplers"):
            if data["capabilities"] is not None:
                data["capabilities"][key] = list(data["capabilities"][key])
        return data

    def public(self) -> Health:
        """What a caller without the token may see: alive, which version, whether a token is needed."""
        return Health(status=self.status, version=self.version, contract_version=self.contract_version,
                      auth_required=self.auth_required)

"""Which model the job's backends run: part of every bump unit's hash.

A bump made with one checkpoint is not the bump another one makes, so the backends' model identity
(from ``GET /v1/health``, with the job's token) goes into the hash of the bump units: switching the
model re-runs the bump units (and what is built from them: bumped packages, shots bumped against a
bumped package) and nothing that renders. The identity is what names the weights, not where they
lie: the checkpoint's hash (A1111's shorthash of the file, or of a diffusers UNet), the family, the
IP-Adapter kind, and the LoRAs with their weights; paths, device and dtype are left
out, so backends on different machines with the same weights count as the same model.

The last identity seen is kept in ``output/.batch/backend_model.json``: with every backend down, a
run (or ``--dry-run``) plans with it, so finished bumps stay finished and renders still run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bump_client.client import BackendError, BumpClient
from bump_contracts.health import Health

MODEL_FILE = "backend_model.json"
READY_WAIT_S = 900.0  # a backend still loading its model: how long a run waits for it


class BackendModelError(ValueError):
    """The backends run different models: bumps would depend on which backend got them."""


def model_identity(health: Health) -> dict[str, Any] | None:
    """The identity of a backend's loaded model from its health document; None while it loads (or
    when the token is missing, so only the public fields came back)."""
    model = health.model
    if model is None or not model.hash:
        return None
    loras = list(health.capabilities.loras) if health.capabilities is not None else []  # "name:weight"
    return {"hash": model.hash, "family": model.family, "ip_adapter_kind": model.ip_adapter_kind,
            "loras": sorted(loras)}


def describe(identity: dict[str, Any] | None) -> str:
    if not identity:
        return "unknown"
    extra = f", IP-Adapter {identity['ip_adapter_kind']}" if identity.get("ip_adapter_kind") else ""
    loras = f", {len(identity['loras'])} LoRA(s)" if identity.get("loras") else ""
    return f"{identity.get('family') or 'model'} {identity['hash']}{extra}{loras}"


def query(urls: list[str], token: str | None, *, wait_s: float = 0.0,
          note: Callable[[str], None] = lambda _: None, client_factory: Callable[..., Any] | None = None
          ) -> dict[str, Any] | None:
    """The model every reachable backend runs (None when none answers with a loaded model).

    A backend still loading is waited for up to ``wait_s``; one that cannot load is left out (the
    run names it again when it starts). Different models on different backends are refused.
    """

    factory = client_factory or (lambda url: BumpClient(url, token, timeout=10.0, retries=0))
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + wait_s
    for url in urls:
        client = factory(url)
        said_waiting = False
        while True:
            try:
                health = client.health()
            except BackendError as exc:
                note(f"backend {url} did not answer ({str(exc).splitlines()[0]})")
                break
            identity = model_identity(health)
            if identity is not None:
                found[url] = identity
                break
            if health.model_state == "failed" or time.monotonic() >= deadline:
                note(f"backend {url}: model {health.model_state}" + (f" ({health.model_error})"
                                                                     if health.model_error else ""))
                break
            if not said_waiting:
                note(f"backend {url} is loading its model; waiting for it (up to {wait_s:.0f} s)")
                said_waiting = True
            time.sleep(1.0)
    distinct = {json.dumps(v, sort_keys=True) for v in found.values()}
    if len(distinct) > 1:
        lines = "; ".join(f"{url}: {describe(v)}" for url, v in found.items())
        raise BackendModelError(f"the backends run different models ({lines}); a job's bumps must all come from "
                                "the same model: list backends that load the same one")
    return next(iter(found.values()), None)


def load_last(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / ".batch" / MODEL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("model") if isinstance(data, dict) else None


def save(out: Path, identity: dict[str, Any]) -> None:
    from headless_renderer.batch.units import write_atomic

    doc = {"model": identity, "seen": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_atomic(out / ".batch" / MODEL_FILE, (json.dumps(doc, indent=1) + "\n").encode())


def resolve(job: Any, *, wait_s: float, note: Callable[[str], None]) -> tuple[dict[str, Any] | None, bool]:
    """(the model identity for the plan, whether a backend told it now) for a job that bumps."""
    identity = query(job.backends, job.token, wait_s=wait_s, note=note)
    if identity is not None:
        return identity, True
    last = load_last(job.output)
    if last is not None:
        note(f"no backend told its model; planning with the last run's ({describe(last)})")
    else:
        note("no backend told its model and no earlier run recorded one: bump units run (when a backend is up)")
    return last, False

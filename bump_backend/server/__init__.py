"""The bump backend's HTTP server: a local job queue with progress, cancel, limits and durability.

``create_app(ServerConfig(...))`` builds the FastAPI app; ``python -m bump_backend serve`` runs it
under uvicorn. The request/status/result documents are in ``bump_contracts.bump_job``.
"""

from bump_backend.server.app import create_app
from bump_backend.server.config import Limits, Retention, ServerConfig

__all__ = ["Limits", "Retention", "ServerConfig", "create_app"]

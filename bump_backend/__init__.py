"""The bump backend: faces, generation, ranking, metadata, jobs and the HTTP server (GPU side)."""

__version__ = "0.1.0"

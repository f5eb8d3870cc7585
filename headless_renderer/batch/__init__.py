"""Batch runs: many characters, packages and shots from one TOML job file, resumable, locally or on Ray.

``jobfile`` (schema, every error at once) -> ``units`` (the plan: independent units keyed by a
hash of their inputs and settings, done-records) -> ``local`` / ``ray_executor`` (who runs them)
-> ``report`` (summary JSON, contact sheets). ``work`` is the code one unit runs, the same
under every executor. Nothing here imports torch: it runs inside Blender's Python too.
"""

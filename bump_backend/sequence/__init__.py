"""Sequences: a video or frame folder bumped with one identity per face track and no flicker.

``sources`` (PyAV / frame folders, streamed), ``tracks`` (linking, cuts, smoothing, gating, auto
references), ``temporal`` (motion in the aligned crop, occlusion checks), ``encode`` (H.264, audio
copied), ``job`` (the two passes, resumable files), ``bumper`` (the only torch module), ``metrics``
(flicker and jitter for the benchmark and tests), ``cli``. See docs/sequence.md.
"""

"""Gating templates, gate geometry, adaptive gates and the per-tube gating engine. Reads no files."""

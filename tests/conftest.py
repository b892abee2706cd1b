"""Shared test helpers: where the shared FCS corpus and GatingML suite live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ``../shared`` beside the repository checkout (CI puts the FCS corpus and GatingML suite there);
#: ``MRDFLOW_SHARED`` overrides it (e.g. for a git worktree that lives elsewhere).
SHARED_DIR = Path(os.environ.get("MRDFLOW_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def shared_path(*parts: str) -> Path:
    """Path under the shared data folder; skips the calling test with a clear reason when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (expected ../shared beside the checkout, or set MRDFLOW_SHARED)")
    return path

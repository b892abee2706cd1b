"""Atomic output files: write to a temporary name in the same folder, then ``os.replace`` it into place.

A run killed at any moment leaves either the previous file or the new one, never half of one. Temporaries carry
:data:`TMP_MARKER` in their name so a later run can remove the ones a killed run left behind
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["TMP_MARKER", "atomic_write_bytes", "atomic_write_text", "remove_stale_temporaries"]

#: part of every temporary file name we create (``.<name>.mrdflow-tmp-XXXX``)
TMP_MARKER = ".mrdflow-tmp-"

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (fsync'd temporary in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARKER}", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporaries left in ``folder`` (not recursive) by a killed run; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        if TMP_MARKER in p.name and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed

"""Checks of the paths a user names, with one message per mistake: one validation of a path for every command.

Inputs must exist and be of the right kind; an output folder may not exist yet (it is created) but must not be a
file and must be writable, which is checked by writing to it (permission bits say nothing for root).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

KINDS = ("file", "dir", "out-dir")


def check_path(path: str | os.PathLike, kind: str, what: str) -> Path:
    """Return `path` if it is a usable `kind` ("file", "dir": existing inputs; "out-dir": a folder to write in).

    Args:
        path: the path given.
        kind: one of KINDS.
        what: how the message names it, e.g. "--ckpt" or "store".
    Raises:
        ValueError: the path does not exist, is the other kind (a folder where a file is expected or the reverse),
            or (out-dir) cannot be created or written.
    """
    p = Path(path).expanduser()
    if kind == "file":
        if p.is_dir():
            raise ValueError(f"{what} {str(path)!r} is a folder; a file is expected here")
        if not p.is_file():
            raise ValueError(f"{what} {str(path)!r} does not exist")
        if not os.access(p, os.R_OK):
            raise ValueError(f"{what} {str(path)!r} cannot be read (permission denied)")
        return p
    if kind == "dir":
        if p.exists() and not p.is_dir():
            raise ValueError(f"{what} {str(path)!r} is a file; a folder is expected here")
        if not p.is_dir():
            raise ValueError(f"{what} {str(path)!r} does not exist")
        return p
    if kind == "out-dir":
        return writable_dir(p, what)
    raise ValueError(f"path kind {kind!r} is not one of {KINDS}")


def writable_dir(path: Path, what: str) -> Path:
    """Create the folder `path` (and its parents) if needed and prove it writable by writing a file in it."""
    existing = next((a for a in (path, *path.parents) if a.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"{what} {str(path)!r}: {str(existing)!r} is a file; a folder is expected here")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ValueError(f"{what} {str(path)!r} cannot be written: {e.strerror or e}") from None
    return path

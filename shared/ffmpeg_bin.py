"""Locate the ffmpeg binary: the system one if on PATH, else the one shipped in the imageio-ffmpeg wheel."""
from __future__ import annotations

import functools
import os
import shutil


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg executable to use.

    `V3S_FFMPEG` overrides; then `ffmpeg` on PATH; then the static binary bundled with imageio-ffmpeg,
    so that no user ever installs ffmpeg by hand.
    """
    override = os.environ.get("V3S_FFMPEG")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise FileNotFoundError(f"V3S_FFMPEG={override!r} is not an executable file")
        return override
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()

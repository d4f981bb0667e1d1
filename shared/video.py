"""Video files through ffmpeg: finding the binary, and decoding a video to resized JPEG frames or to raw RGB.

The store's frames come from `decode_video`: ffmpeg does the whole per-frame job (decode, resize with `scale`, JPEG-encode with its mjpeg encoder) and
writes the JPEGs back to back on stdout; Python only splits the byte stream into frames. Measured on the
reference videos (docs/store.md), this is faster than piping raw RGB into OpenCV's encoder, and at
`-q:v 2` gives smaller files at a lower error. Source metadata comes from the same run's stderr (there is
no ffprobe): no second process per video.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import ffmpeg
import numpy as np

_CHUNK = 1 << 16


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
_RST = frozenset(range(0xD0, 0xD8))


class DecodeError(Exception):
    """The source could not be decoded; the message says why (the manifest records it)."""


@dataclass
class SourceInfo:
    """What ffmpeg's stderr says about a source's selected video stream."""

    codec: str = ""
    width: int = -1  # as displayed: rotation metadata applied
    height: int = -1
    fps: float = 0.0
    rotation: int = 0
    has_video: bool = False


@dataclass
class Decoded:
    """A decoded video: concatenated JPEG bytes and per-frame offsets (num_frames + 1,), starting at 0."""

    data: bytes
    offsets: np.ndarray
    source: SourceInfo = field(default_factory=SourceInfo)

    @property
    def num_frames(self) -> int:
        return len(self.offsets) - 1


_STREAM_RE = re.compile(r"^\s*Stream #0:\d+.*?: Video: (?P<rest>.*)$")
_SIZE_RE = re.compile(r"(?<![\w/.])([1-9]\d*)x([1-9]\d*)(?=[\s,\[]|$)")
_FPS_RE = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_ROT_RE = re.compile(r"rotation of (-?[\d.]+) degrees")


def parse_source_info(stderr: str) -> SourceInfo:
    """Parse the first video stream of `Input #0` from ffmpeg's stderr.

    Args:
        stderr: the text ffmpeg prints (log level info) for `ffmpeg -i SRC ...`.
    """
    info = SourceInfo()
    in_input, in_video = False, False
    for line in stderr.splitlines():
        if line.startswith("Input #"):
            in_input = line.startswith("Input #0")
            continue
        if line.startswith("Output #") or line.startswith("Stream mapping"):
            in_input = False
        if not in_input:
            continue
        m = _STREAM_RE.match(line)
        if m:
            if info.has_video:
                in_video = False
                continue
            rest = m.group("rest")
            if "(attached pic)" in rest:
                continue
            info.has_video, in_video = True, True
            info.codec = rest.split(",")[0].split(" ")[0]
            s = _SIZE_RE.search(rest)
            if s:
                info.width, info.height = int(s.group(1)), int(s.group(2))
            rates = {unit: float(v) * (1000 if k else 1) for v, k, unit in _FPS_RE.findall(rest)}
            info.fps = rates.get("fps", rates.get("tbr", 0.0))
            continue
        if line.lstrip().startswith("Stream #"):
            in_video = False
            continue
        if in_video:
            r = _ROT_RE.search(line)
            if r:
                info.rotation = int(round(float(r.group(1))))
    if info.rotation % 180 != 0 and info.rotation % 90 == 0:
        info.width, info.height = info.height, info.width
    return info


def _jpeg_end(buf: bytearray | bytes, start: int) -> int:
    """End (exclusive) of the JPEG starting at `start`, or -1 if `buf` does not hold all of it yet.

    Walks the marker segments by their lengths up to the scan data, then scans the entropy-coded bytes
    for the next marker (0xFF not followed by a 0x00 stuffing byte or a restart marker): searching for
    0xFFD9 blindly could hit those bytes inside a table segment.
    """
    n = len(buf)
    if n - start < 2:
        return -1
    if buf[start] != 0xFF or buf[start + 1] != 0xD8:
        raise DecodeError(f"ffmpeg output is not a JPEG stream at byte {start}")
    pos = start + 2
    while True:
        if pos + 2 > n:
            return -1
        if buf[pos] != 0xFF:
            raise DecodeError(f"corrupt JPEG stream from ffmpeg at byte {pos}")
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if marker in _RST or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            return -1
        seg_end = pos + 2 + ((buf[pos + 2] << 8) | buf[pos + 3])
        if marker != 0xDA:
            pos = seg_end
            continue
        pos = seg_end
        while True:  # entropy-coded data after start-of-scan
            pos = buf.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= n:
                return -1
            nxt = buf[pos + 1]
            if nxt == 0x00 or nxt in _RST:
                pos += 2
                continue
            break


def decode_command(path: str, height: int, width: int, quality: int) -> list[str]:
    """The ffmpeg argv that decodes `path` to JPEGs of height x width on stdout.

    Args:
        path: absolute source path; passed as `file:<path>` so that no name (a leading dash, a colon,
            `$()`) is read as an option or a protocol. argv only, never a shell.
        quality: ffmpeg mjpeg `-q:v` (2 best .. 31).
    """
    # One decoder thread: extraction runs one ffmpeg per core already.
    stream = ffmpeg.input("file:" + path, nostdin=None, threads=1)
    stream = ffmpeg.filter(stream, "scale", width, height, out_range="full")
    out = ffmpeg.output(
        # Standard Huffman tables: ~10% less encoder CPU than per-frame optimal tables for ~6% more bytes.
        stream, "pipe:", format="image2pipe", vcodec="mjpeg", pix_fmt="yuvj420p", huffman="default", **{"q:v": quality},
        fps_mode="passthrough", an=None, sn=None, dn=None, threads=1,
    )
    return ffmpeg.compile(out, cmd=[ffmpeg_exe(), "-hide_banner", "-nostats"])


def decode_video(path: str | os.PathLike, height: int, width: int, quality: int = 2) -> Decoded:
    """Decode every frame of one video, resized inside ffmpeg, as JPEGs; memory holds JPEGs, never raw frames.

    Args:
        path: the source file.
        height, width: stored frame size.
        quality: ffmpeg mjpeg `-q:v` (2 best .. 31).
    Raises:
        DecodeError: no video stream, ffmpeg failed, or no frame decoded (the message says which).
    """
    path = os.path.abspath(os.fspath(path))
    argv = decode_command(path, height, width, quality)
    data = bytearray()
    ends: list[int] = []
    with tempfile.TemporaryFile() as err:
        # stderr to a file, not a pipe: ffmpeg can write a lot of it, and a full pipe would deadlock.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            scan = 0
            while True:
                chunk = proc.stdout.read(_CHUNK)
                if not chunk:
                    break
                data += chunk
                while True:
                    end = _jpeg_end(data, scan)
                    if end < 0:
                        break
                    ends.append(end)
                    scan = end
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    source = parse_source_info(stderr)
    if not source.has_video:
        raise DecodeError("no video stream" + _last_error(stderr, prefix="; ffmpeg: "))
    if rc != 0:
        raise DecodeError(f"ffmpeg exit status {rc}" + _last_error(stderr, prefix=": "))
    if scan != len(data):
        raise DecodeError(f"ffmpeg output ended inside a JPEG ({len(data) - scan} trailing bytes)")
    if not ends:
        raise DecodeError("no frames decoded" + _last_error(stderr, prefix="; ffmpeg: "))
    offsets = np.zeros(len(ends) + 1, dtype=np.int64)
    offsets[1:] = ends
    return Decoded(data=bytes(data), offsets=offsets, source=source)


def _last_error(stderr: str, prefix: str) -> str:
    """The last meaningful ffmpeg stderr line (why it failed), for the failure record."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    skip = ("Input #", "Output #", "Stream #", "Duration:", "Metadata:", "Press [q]", "Stream mapping", "Side data")
    for line in reversed(lines):
        if not line.startswith(skip) and ":" in line or "Invalid" in line or "rror" in line:
            return prefix + line[:300]
    return ""


def read_video_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode every frame of a video at its own size, losslessly: (T, H, W, 3) uint8 RGB.

    For checking encoded videos (the synthetic set's tests and contact sheets); the store's frames come from
    `decode_video`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    # `ffmpeg -i FILE` with no output prints the stream header and stops without decoding (there is no ffprobe).
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", "file:" + str(path.resolve())],
                         capture_output=True, check=False).stderr.decode(errors="replace")
    info = parse_source_info(err)
    if not info.has_video or info.width < 1:
        raise ValueError(f"no video stream found in {path}: {err.strip()[-300:]}")
    out, _ = (ffmpeg.input("file:" + str(path.resolve())).output("pipe:", format="rawvideo", pix_fmt="rgb24")
              .global_args("-loglevel", "error", "-threads", "1")
              .run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True))
    return np.frombuffer(out, np.uint8).reshape(-1, info.height, info.width, 3)

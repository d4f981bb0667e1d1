"""Reading split-file lines safely, finding the folder that holds the split files, and scanning for videos."""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from .entries import VIDEO_EXTENSIONS

BUNDLED_ROOT = Path(__file__).resolve().parent

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def bundled_dir(dataset: str) -> Path:
    """The folder of split files shipped with the package for `dataset` (ucf101, hmdb51, kinetics400)."""
    return BUNDLED_ROOT / dataset


def read_lines(path: Path) -> list[tuple[int, str]]:
    """The non-blank lines of a text file as (1-based line number, text stripped of surrounding whitespace).

    A UTF-8 byte-order mark and CRLF or LF endings are accepted.

    Args:
        path: the text file.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    # split("\n") rather than splitlines(): the latter also breaks on form feeds and other characters
    # that are legal inside file names.
    out = []
    for i, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if line:
            out.append((i, line))
    return out


def check_rel_path(text: str, source: Path | str, lineno: int) -> str:
    """Normalise a path read from a split file and reject one that leaves the dataset root.

    Args:
        text: the path as written in the split file.
        source: the split file (named in errors).
        lineno: 1-based line number (named in errors).

    Returns:
        The POSIX path with duplicate slashes and "." components removed; case and every other character kept.
    """
    where = f"{source}:{lineno}"
    if "\0" in text:
        raise ValueError(f"{where}: path {text!r} contains a NUL character")
    if text.startswith(("/", "\\", "~")) or _WINDOWS_DRIVE.match(text):
        raise ValueError(f"{where}: path {text!r} is absolute or home-relative; split files must hold paths "
                         "relative to the dataset root")
    # Backslashes count as separators here so that a Windows-written `..\x` is caught too.
    if any(part == ".." for part in re.split(r"[\\/]", text)):
        raise ValueError(f"{where}: path {text!r} has a '..' component and would point outside the dataset root")
    norm = PurePosixPath(text).as_posix()
    if norm in ("", "."):
        raise ValueError(f"{where}: {text!r} is not a file path")
    return norm


def parse_list_line(text: str) -> tuple[str, int | None]:
    """Split a UCF101-format list line into (path, 1-based class id or None).

    The last whitespace-separated field is the class id when it is all digits and is not the whole line
    (trainlist: `<Class>/<file> <id>`; testlist: `<Class>/<file>`). Spaces inside the path are kept.

    Args:
        text: one stripped, non-blank line.
    """
    fields = text.rsplit(None, 1)
    if len(fields) == 2 and fields[1].isascii() and fields[1].isdigit():
        return fields[0], int(fields[1])
    return text, None


def pick_splits_dir(
    splits_dir: str | Path | None,
    candidates: Iterable[Path],
    holds: Callable[[Path], bool],
    bundled: Path | None,
    what: str,
) -> tuple[Path, str]:
    """Choose the folder to read split files from: `splits_dir`, else the first candidate that holds them,
    else the bundled copies.

    Args:
        splits_dir: the user's `--splits DIR`, or None.
        candidates: folders inside the dataset root, in order of preference.
        holds: tells whether a folder holds the split files.
        bundled: the package's own copies, or None when there are none.
        what: the expected files, for error messages.

    Returns:
        (folder, description for `DatasetManifest.splits_from`).
    """
    if splits_dir is not None:
        d = Path(splits_dir)
        if not d.is_dir():
            raise FileNotFoundError(f"splits folder {d} does not exist or is not a folder")
        if not holds(d):
            raise ValueError(f"splits folder {d} holds no {what}")
        return d, str(d)
    for d in candidates:
        if d.is_dir() and holds(d):
            return d, str(d)
    if bundled is None:
        raise FileNotFoundError(f"no {what} in {', '.join(str(c) for c in candidates)}; pass --splits DIR")
    return bundled, f"bundled:{bundled.name}"


def is_video_name(name: str) -> bool:
    """Whether a file name's suffix (any case) is a video extension."""
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def video_paths(top: Path, root: Path) -> list[str]:
    """Every path below `top` whose suffix is a video extension, as sorted POSIX paths relative to `root`.

    What a path is on disk does not matter: a regular file, a directory named like a video (not descended
    into), a dangling symlink are all listed, so the extractor can record them as failures. Names starting
    with "." are skipped (macOS `._x.mp4` resource forks, editor files). Symlinked folders are followed, each
    real folder once, so a link loop ends.

    Args:
        top: the folder to walk (itself inside `root`).
        root: the dataset root.
    """
    out: list[str] = []
    seen: set[tuple[int, int]] = set()
    base = os.path.join(str(root), "")  # paths below `top` start with it: cut it off (a Path per file: 15 us)

    def visit(d: str) -> None:
        try:
            st = os.stat(d)
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(d) as it:
            children = sorted(it, key=lambda e: e.name)
        for e in children:
            if e.name.startswith("."):
                continue
            if is_video_name(e.name):
                rel = e.path[len(base):] if e.path.startswith(base) else os.path.relpath(e.path, root)
                out.append(rel.replace(os.sep, "/"))
            elif e.is_dir(follow_symlinks=True):
                visit(e.path)

    visit(str(top))
    return sorted(out)

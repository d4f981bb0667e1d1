"""`generate(config, out)`: render, encode and lay out a whole synthetic dataset, resumably; and its contact sheet."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from v3s.shared.video import read_video_rgb

from ..progress import Progress
from .config import SynthConfig
from .layout import PlannedVideo, plan_dataset, write_aslan_files, write_hmdb51_splits, write_ucf101_splits
from .render import encode_video, render_video
from .scene import sample_scene

def _make_one(video: PlannedVideo, out: Path, codec: str) -> int:
    path = out / video.rel_path
    if path.is_file():   # written atomically by an interrupted earlier run with the same config
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, _ = render_video(video.spec)
    encode_video(frames, path, codec)
    return len(frames)


@dataclass(frozen=True)
class SynthResult:
    """What `generate` did: the number of clips, frames written this run, and whether it was already done."""

    videos: int
    frames_written: int
    reused: bool
    classes: tuple[str, ...] = field(default=())


_CONFIG_FILE = ".synth_config.json"
_DONE_FILE = ".synth_done"
# Fields added after folders were made, with the default that reproduces those folders' frames: left out of
# .synth_config.json at that default, so that a rerun still recognises (and reuses) a folder made before them.
_LATER_FIELDS = {"clutter": "full"}


def config_json(config: SynthConfig) -> str:
    """The config as OUT/.synth_config.json records it (and a rerun compares it)."""
    fields_ = asdict(config)
    for name, default in _LATER_FIELDS.items():
        if fields_[name] == default:
            del fields_[name]
    return json.dumps(fields_, sort_keys=True)


def generate(config: SynthConfig, out: str | os.PathLike, jobs: int | None = None, quiet: bool = True) -> SynthResult:
    """Render, encode and lay out the whole synthetic dataset in `out`, in parallel over clips.

    A finished folder with the same config is reused at once; an interrupted one resumes (every file is
    written atomically); a folder holding something else is refused.

    Args:
        config: what to generate.
        out: the dataset root to create.
        jobs: worker processes (joblib); None = every core available to this process.
        quiet: no progress output (the command line shows it).
    """
    from joblib import Parallel, delayed

    out = Path(out)
    want = config_json(config)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is a file; a folder is expected")
    cfg_file = out / _CONFIG_FILE
    videos = plan_dataset(config)
    classes = list(dict.fromkeys(v.class_name for v in videos))
    if out.exists() and any(out.iterdir()):
        have = cfg_file.read_text() if cfg_file.is_file() else None
        if have != want:
            raise ValueError(f"output folder {out} is not empty and does not hold a synthetic set made with this "
                             f"config ({'no ' + _CONFIG_FILE if have is None else 'config differs'}); "
                             "remove it or choose another folder")
        if (out / _DONE_FILE).is_file():
            return SynthResult(len(videos), 0, True, tuple(classes))
    out.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(want)
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs={jobs} must be >= 1")
    # Longest first keeps both workers busy to the end.
    order = sorted(videos, key=lambda v: -sample_scene(v.spec).n_frames)
    progress = Progress(len(order), f"synth {out}", quiet)
    counts = []
    for n in Parallel(n_jobs=jobs, batch_size=4, return_as="generator_unordered")(
            delayed(_make_one)(v, out, config.codec) for v in order):
        counts.append(n)
        progress.update()
    progress.close()
    if config.layout == "ucf101":
        write_ucf101_splits(out, videos, classes)
    elif config.layout == "hmdb51":
        write_hmdb51_splits(out, videos, classes)
    else:
        write_aslan_files(out, videos, classes, config)
    (out / _DONE_FILE).write_text("")
    return SynthResult(len(videos), int(sum(counts)), False, tuple(classes))


def write_contact_sheet(out: str | os.PathLike, config: SynthConfig, png: str | os.PathLike,
                        frames_per_row: int = 6, step: int = 8) -> Path:
    """A PNG with `frames_per_row` decoded frames (every `step`-th) of the first clip of each class.

    Args:
        out: a dataset root made by `generate` with `config`.
        config: the config it was made with.
        png: the image to write.
        frames_per_row: frames shown per class.
        step: source frames between shown frames.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, png = Path(out), Path(png)
    firsts = {}
    for v in plan_dataset(config):
        firsts.setdefault(v.class_name, v)
    rows = len(firsts)
    fig, axes = plt.subplots(rows, frames_per_row, figsize=(1.9 * frames_per_row, 1.5 * rows), squeeze=False)
    for r, (name, v) in enumerate(firsts.items()):
        frames = read_video_rgb(out / v.rel_path)
        for c in range(frames_per_row):
            ax = axes[r, c]
            ax.imshow(frames[min(c * step, len(frames) - 1)])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title(f"t={c * step}", fontsize=8)
    kinds = " --class-set kinds" if config.class_set != "directions" and config.layout != "aslan" else ""
    kinds += f" --clutter {config.clutter}" if config.clutter != "full" else ""
    fig.suptitle(f"v3s-prep synth --layout {config.layout}{kinds} --seed {config.seed}: first clip of each class, "
                 f"every {step}th frame", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png

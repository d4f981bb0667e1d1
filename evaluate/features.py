"""Clip features from a model over a frame store, and the on-disk cache that makes re-evaluation take seconds.

Every evaluation reads the same way: pick the clips of each video (`ClipSpec`: 10 linspace clips for recognition
and retrieval, stride clips for ASLAN), centre-crop and normalise them on the device (`shared.spatial.eval_batch`),
run the model (bf16 autocast on CUDA, fp32 on the CPU) and keep either every clip's output (recognition logits)
or each video's mean over its clips (retrieval and ASLAN features, which can be 9,216-d per clip: a per-clip
array of UCF101 would need 5 GB). Nothing is dropped: the loader has no `drop_last`, and each video has its clips.

Cache: `CKPT_DIR/features/<key>.npz`, where <key> is a sha256 of everything that changes the numbers: the
checkpoint's content hash (or backbone, width and seed for a random-init model), the store's content fingerprint,
dataset, the exact list of videos, the clip spec (clip count or stride, clip length, crop), the taps and the
precision. Batch size, worker count and device do not change the numbers and are not part of the key (bf16 and
fp32 do, so a GPU run and a CPU run keep separate entries). The checkpoint hash is computed once per file version
and remembered in `features/sha256.json`, keyed by path, size, mtime and inode.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from v3s.shared.atomic import atomic_write, write_bytes
from v3s.shared.checkpoint import build_network, config_from_checkpoint, load_checkpoint
from v3s.shared.clips import EvalClips
from v3s.shared.models import VideoModel, build_backbone
from v3s.shared.spatial import eval_batch
from v3s.shared.store import Store, VideoInfo
from v3s.shared.temporal import clip_span, linspace_clip_starts, strided_clip_starts

CACHE_VERSION = 1
CLIP_MODES = ("linspace", "stride")
# Incremented by every extraction that actually runs the model (a cache hit leaves it alone): tests and logs use it.
EXTRACTIONS = 0


def resolve_device(requested: str = "auto") -> torch.device:
    """The torch device for "auto" (CUDA when present) | "cpu" | "cuda" | "cuda:N".

    Args:
        requested: the --device value.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was asked for but CUDA is not available; use auto or cpu")
        return torch.device(requested)
    raise ValueError(f"device {requested!r} is not one of auto, cpu, cuda, cuda:N")


def precision_for(device: torch.device) -> str:
    """bf16 autocast on CUDA, fp32 on the CPU (CPU bf16 convolutions are slower than fp32 on most machines)."""
    return "bf16" if device.type == "cuda" else "fp32"


@dataclass(frozen=True)
class ClipSpec:
    """Which clips of each video are read, and how they are cropped.

    Attributes:
        mode: "linspace" (n_clips clips centred at linspace(clip_len/2, len - clip_len/2)) or "stride".
        clip_len: frames per clip.
        crop: side of the centre crop fed to the network.
        n_clips: clips per video for "linspace".
        stride: frames between clip starts for "stride".
        frame_step: every frame_step-th frame inside a clip (1: consecutive frames, the peers' protocol).
    """

    mode: str = "linspace"
    clip_len: int = 16
    crop: int = 112
    n_clips: int = 10
    stride: int = 8
    frame_step: int = 1

    def __post_init__(self) -> None:
        if self.mode not in CLIP_MODES:
            raise ValueError(f"clip mode {self.mode!r} is not one of {CLIP_MODES}")
        for name in ("clip_len", "crop", "n_clips", "stride", "frame_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def starts(self, num_frames: int) -> np.ndarray:
        """First frame of every clip of a video of num_frames frames. Returns int64 (n,)."""
        span = clip_span(self.clip_len, self.frame_step)
        if self.mode == "linspace":
            return linspace_clip_starts(num_frames, self.n_clips, span)
        return strided_clip_starts(num_frames, span, self.stride)

    def key(self) -> dict[str, Any]:
        """The fields that change which pixels are read (n_clips / stride only for their own mode; frame_step
        only when it is not 1, so caches written before it existed stay valid)."""
        key = {"mode": self.mode, "clip_len": self.clip_len, "crop": self.crop}
        key.update({"n_clips": self.n_clips} if self.mode == "linspace" else {"stride": self.stride})
        return key if self.frame_step == 1 else {**key, "frame_step": self.frame_step}


def clip_geometry(cfg: Any, loaded: "LoadedModel") -> dict[str, int]:
    """ClipSpec's clip_len, crop and frame_step: the options `cfg.clip_len`, `cfg.clip_size` and `cfg.frame_step`
    where given, else the checkpoint's (16, 112 and 1 where it has none)."""
    return {"clip_len": cfg.clip_len or int(loaded.config.get("clip_len", 16)),
            "crop": cfg.clip_size or int(loaded.config.get("clip_size", 112)),
            "frame_step": cfg.frame_step or int(loaded.config.get("frame_step", 1))}


class ClipDataset(EvalClips):
    """Every (video, clip start) of `spec` for a list of videos, in video order: `EvalClips` with the spec's starts.

    Items are (uint8 clip (clip_len, H, W, 3), video row); a spec in "linspace" mode reads exactly the clips of
    the finetuning validation (`EvalClips` with its default starts).

    Args:
        store: the frame store.
        videos: the videos (all of one dataset), in the order of the output rows.
        spec: which clips.
    """

    def __init__(self, store: Store, videos: Sequence[VideoInfo], spec: ClipSpec) -> None:
        super().__init__(store, videos[0].dataset, None, None, clip_len=spec.clip_len, videos=videos,
                         starts=spec.starts, frame_step=spec.frame_step)
        self.spec = spec

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """Returns (uint8 clip (clip_len, H, W, 3), video row)."""
        clip, _, row = super().__getitem__(i)
        return clip, row


@dataclass
class Features:
    """Model outputs for a list of videos.

    Attributes:
        keys: (N,) store keys of the videos, in row order.
        labels: (N,) int labels from the store.
        video: tap -> (N, D) float32 mean over each video's clips.
        clips: tap -> (N_clips, D) float32 per-clip outputs (only the taps asked for per clip).
        clip_video: (N_clips,) int64 video row of each clip (with `clips`), else None.
        cache_path: the .npz this came from or went to (None without a cache).
        cache_hit: True when read from the cache, False when the model ran.
    """

    keys: list[str]
    labels: np.ndarray
    video: dict[str, np.ndarray]
    clips: dict[str, np.ndarray] = field(default_factory=dict)
    clip_video: np.ndarray | None = None
    cache_path: Path | None = None
    cache_hit: bool = False


@torch.no_grad()
def extract_features(
    forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    store: Store,
    videos: Sequence[VideoInfo],
    spec: ClipSpec,
    *,
    clip_taps: Sequence[str] = (),
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    workers: int = 0,
    progress: bool = True,
    desc: str = "features",
) -> Features:
    """Run `forward` on every clip of `videos` and average its outputs per video.

    Args:
        forward: maps a normalised float batch (B, 3, T, crop, crop) on `device` to {tap: (B, D)} tensors.
        store: the frame store.
        videos: the videos (rows of the output, in this order); none may be skipped.
        spec: which clips and which crop.
        clip_taps: taps whose per-clip rows are kept too (e.g. ("logits",) for clip accuracy).
        device: where the model runs (the model must already be there).
        batch_size: clips per forward pass.
        workers: DataLoader worker processes (0: read in this process).
        progress: show a tqdm bar on stderr.
        desc: the bar's label.

    Returns:
        Features (cache fields unset).
    """
    global EXTRACTIONS
    if not videos:
        raise ValueError("no videos to extract features from")
    if batch_size < 1 or workers < 0:
        raise ValueError(f"batch_size must be >= 1 and workers >= 0, got {batch_size}, {workers}")
    h, w = videos[0].height, videos[0].width
    if spec.crop > min(h, w):
        raise ValueError(f"crop {spec.crop} is larger than the stored frames ({h}x{w}) of {videos[0].dataset!r}")
    device = torch.device(device)
    data = ClipDataset(store, videos, spec)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, drop_last=False, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    n = len(videos)
    sums: dict[str, np.ndarray] = {}
    per_clip: dict[str, list[np.ndarray]] = {t: [] for t in clip_taps}
    counts = np.zeros(n, dtype=np.int64)
    clip_video = []
    EXTRACTIONS += 1
    with tqdm(total=len(data), desc=desc, unit="clip", disable=not progress, leave=False) as bar:
        for clips, rows in loader:
            x = eval_batch(clips.to(device, non_blocking=True), spec.crop)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = forward(x)
            rows_np = rows.numpy().astype(np.int64)
            np.add.at(counts, rows_np, 1)
            clip_video.append(rows_np)
            for tap, t in out.items():
                # Host copy per batch: sums over a whole split would not fit on the device for conv5 features.
                values = t.detach().float().cpu().numpy()
                if tap not in sums:
                    sums[tap] = np.zeros((n, values.shape[1]), dtype=np.float64)
                np.add.at(sums[tap], rows_np, values)
                if tap in per_clip:
                    per_clip[tap].append(values.astype(np.float32))
            bar.update(len(rows_np))
    missing = [t for t in clip_taps if t not in sums]
    if missing:
        raise ValueError(f"clip taps {missing} are not among the model outputs {sorted(sums)}")
    return Features(
        keys=[v.key for v in videos],
        labels=np.array([v.label for v in videos], dtype=np.int64),
        video={t: (s / counts[:, None]).astype(np.float32) for t, s in sums.items()},
        clips={t: np.concatenate(v) for t, v in per_clip.items()},
        clip_video=np.concatenate(clip_video) if clip_taps else None,
    )


# ---- identities: checkpoint hash, store fingerprint, cache key ----------------------------------------------

_SHA_MEMO: dict[tuple[str, int, int, int], str] = {}
HASH_MEMO_FILE = "sha256.json"


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino


def file_sha256(path: str | os.PathLike, memo_dir: str | os.PathLike | None = None) -> str:
    """sha256 of a file's content, computed once per file version (path, size, mtime, inode).

    Args:
        path: the file (a checkpoint).
        memo_dir: a folder whose `sha256.json` remembers hashes across processes (None: this process only).

    Returns:
        64 hex digits.
    """
    path = Path(path)
    key = _stat_key(path)
    if key in _SHA_MEMO:
        return _SHA_MEMO[key]
    memo_file = Path(memo_dir) / HASH_MEMO_FILE if memo_dir is not None else None
    memo: dict[str, Any] = {}
    if memo_file is not None and memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text())
        except ValueError:
            memo = {}  # a damaged memo only costs a re-hash
        entry = memo.get(path.name)
        if isinstance(entry, dict) and [entry.get(k) for k in ("size", "mtime_ns", "inode")] == list(key[1:]):
            _SHA_MEMO[key] = entry["sha256"]
            return entry["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    _SHA_MEMO[key] = digest
    if memo_file is not None:
        memo[path.name] = {"size": key[1], "mtime_ns": key[2], "inode": key[3], "sha256": digest}
        try:
            write_bytes(memo_file, (json.dumps(memo, indent=1, sort_keys=True) + "\n").encode())
        except OSError:
            pass  # a read-only checkpoint folder only costs a re-hash next time
    return digest


def store_fingerprint(store: Store, dataset: str) -> str:
    """sha256 of what a dataset's frames depend on: extraction settings, classes, every video row, shard sizes.

    Re-extracting a video writes a new shard and changes its row; re-extracting at another size or quality
    changes the settings; so a changed store gets a new fingerprint without hashing gigabytes of JPEGs.

    Args:
        store: the opened store.
        dataset: a dataset in it.
    """
    rows = store.records(dataset)
    shards = sorted({r["shard"] for r in rows})
    doc = {
        "settings": store.settings(dataset),
        "classes": list(store.classes(dataset)),
        "rows": rows,
        "shard_bytes": {s: (store.path / dataset / s).stat().st_size for s in shards},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(parts: Mapping[str, Any]) -> str:
    """The cache file stem for a protocol description (a JSON-able mapping)."""
    blob = json.dumps({"cache_version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def save_features(path: Path, feats: Features, meta: Mapping[str, Any]) -> None:
    """Write Features to an .npz atomically (a temp file in the same folder, then a rename).

    Layout: keys (N,) str, labels (N,), video/<tap> (N, D), clips/<tap> (N_clips, D), clip_video (N_clips,),
    meta (a JSON string describing the protocol).
    """
    arrays: dict[str, np.ndarray] = {"keys": np.array(feats.keys, dtype=str), "labels": feats.labels,
                                     "meta": np.array(json.dumps(dict(meta), sort_keys=True, default=str))}
    arrays.update({f"video/{t}": a for t, a in feats.video.items()})
    arrays.update({f"clips/{t}": a for t, a in feats.clips.items()})
    if feats.clip_video is not None:
        arrays["clip_video"] = feats.clip_video
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_features(path: Path) -> Features:
    """Read an .npz written by `save_features`."""
    with np.load(path, allow_pickle=False) as z:
        return Features(
            keys=z["keys"].tolist(),
            labels=z["labels"],
            video={k[len("video/"):]: z[k] for k in z.files if k.startswith("video/")},
            clips={k[len("clips/"):]: z[k] for k in z.files if k.startswith("clips/")},
            clip_video=z["clip_video"] if "clip_video" in z.files else None,
            cache_path=path,
            cache_hit=True,
        )


# ---- models --------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A network to evaluate and what identifies its weights.

    Attributes:
        model: a VideoModel (backbone + head) in eval mode; a random-init model has no trained head.
        kind: "v3s-pretrain", "v3s-finetune" or "random".
        config: the checkpoint's resolved config as a dict (random: backbone, width, seed).
        identity: what the cache is keyed by: {"sha256": ...} or {"random": {backbone, width, seed}}.
        cache_dir: default cache folder (CKPT_DIR/features), None for random models.
        path: the checkpoint file, None for random models.
    """

    model: VideoModel
    kind: str
    config: dict[str, Any]
    identity: dict[str, Any]
    cache_dir: Path | None
    path: Path | None = None

    @property
    def backbone(self) -> nn.Module:
        return self.model.backbone

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for results files."""
        d = {"kind": self.kind, "backbone": self.config.get("backbone"), "width": self.config.get("width"),
             **self.identity}
        if self.path is not None:
            d["checkpoint"] = str(self.path)
        return d


def load_model(path: str | os.PathLike, kind: str | None = None) -> LoadedModel:
    """Load a v3s checkpoint and rebuild its network, with errors that say what does not fit.

    Args:
        path: a checkpoint written by v3s-train (last.pt / best.pt).
        kind: "v3s-pretrain" / "v3s-finetune" to require one, None for either.

    Raises:
        FileNotFoundError: no such file. ValueError: not a v3s checkpoint, the wrong kind, or weights that do
            not load into the network its config describes.
    """
    path = Path(path)
    ckpt = load_checkpoint(path, kind=kind)
    try:
        config = config_from_checkpoint(ckpt)
        model = build_network(config)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"checkpoint {path}: its config does not describe a network: {e}") from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()
        raise ValueError(f"checkpoint {path}: weights do not load into a {config.backbone!r} width {config.width} "
                         f"model (wrong backbone or width in its config?): {' '.join(first)[:600]}") from None
    cache_dir = path.resolve().parent / "features"
    return LoadedModel(model=model.eval(), kind=ckpt["kind"], config=config.to_dict(),
                       identity={"sha256": file_sha256(path, memo_dir=cache_dir)}, cache_dir=cache_dir, path=path)


def random_model(backbone: str, width: float = 1.0, seed: int = 0, input_mode: str = "rgb") -> LoadedModel:
    """A randomly initialised backbone (the "random" baseline rows of the retrieval tables).

    Args:
        backbone: a registered backbone name.
        width: channel multiplier.
        seed: torch seed of the initialisation; same (backbone, width, seed), same weights.
        input_mode: "rgb" or "diff" (see `build_backbone`).
    """
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        net = build_backbone(backbone, width=width, input_mode=input_mode)
    finally:
        torch.random.set_rng_state(state)
    spec = {"backbone": backbone, "width": float(width), "seed": int(seed), "input_mode": input_mode,
            "torch": torch.__version__.split("+")[0]}
    return LoadedModel(model=VideoModel(net, nn.Identity()).eval(), kind="random",
                       config={"backbone": backbone, "width": float(width), "seed": int(seed), "input_mode": input_mode},
                       identity={"random": spec}, cache_dir=None)


def tap_forward(backbone: nn.Module, taps: Sequence[str]) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """A forward function returning backbone taps (e.g. "conv5", "pool", "pool3")."""
    taps = list(taps)
    return lambda x: backbone.forward_features(x, taps)


def logits_forward(model: nn.Module) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """A forward function returning a classifier's logits under the tap name "logits"."""
    return lambda x: {"logits": model(x)}


def cached_features(
    loaded: LoadedModel,
    forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    outputs: Sequence[str],
    store: Store,
    dataset: str,
    videos: Sequence[VideoInfo],
    spec: ClipSpec,
    *,
    what: Mapping[str, Any],
    clip_taps: Sequence[str] = (),
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    workers: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Features:
    """Features from the cache when this exact protocol was run before on these weights, else extract and save.

    Args:
        loaded: the model and its identity (its .model must already be on `device`).
        forward: see `extract_features`.
        outputs: the names `forward` returns (part of the key).
        store, dataset, videos, spec: what to read (the key holds the store fingerprint and every video key).
        what: protocol description added to the key and the file's meta (e.g. {"split": "1", "role": "test"}).
        clip_taps: outputs kept per clip.
        cache_dir: folder of the .npz files (default: loaded.cache_dir); None with a random model: no cache.
        use_cache: False to always extract (and not write).
        device, batch_size, workers, progress: see `extract_features`.
        log: called with one line saying whether the cache was hit, and where.
    """
    device = torch.device(device)
    folder = Path(cache_dir) if cache_dir is not None else loaded.cache_dir
    parts = {
        "model": loaded.identity, "store": store_fingerprint(store, dataset), "dataset": dataset,
        "videos": hashlib.sha256("\n".join(v.key for v in videos).encode()).hexdigest(), "n_videos": len(videos),
        "clips": spec.key(), "outputs": sorted(outputs), "clip_taps": sorted(clip_taps),
        "precision": precision_for(device), **dict(what),
    }
    path = folder / f"{cache_key(parts)}.npz" if (folder is not None and use_cache) else None
    if path is not None and path.is_file():
        try:
            feats = load_features(path)
        except (OSError, ValueError, KeyError) as e:  # a damaged cache file is rebuilt, not trusted
            if log:
                log(f"features: cache file {path} unreadable ({e}); extracting again")
        else:
            if feats.keys == [v.key for v in videos]:
                if log:
                    log(f"features: cache hit {path}")
                return feats
    feats = extract_features(forward, store, videos, spec, clip_taps=clip_taps, device=device,
                             batch_size=batch_size, workers=workers, progress=progress,
                             desc=str(what.get("role", "features")))
    if path is not None:
        try:
            save_features(path, feats, {**parts, "store_path": str(store.path)})
        except OSError as e:  # e.g. a read-only checkpoint folder: the results are still computed
            if log:
                log(f"features: cannot write the cache file {path} ({e}); pass --cache-dir to cache elsewhere")
        else:
            feats.cache_path = path
            if log:
                log(f"features: extracted {len(videos)} videos, cached at {path}")
    elif log:
        log(f"features: extracted {len(videos)} videos (not cached)")
    return feats


def resolve_model(cfg: Any) -> LoadedModel:
    """The checkpoint's network, or a random initialisation (cfg.random with backbone / width / seed): exactly one.

    Args:
        cfg: a task config with ckpt, random, backbone, width and seed (RetrievalConfig, AslanConfig).
    """
    if bool(cfg.ckpt) == cfg.random:
        raise ValueError("give exactly one of --ckpt CHECKPOINT and --random (with --backbone, --width, --seed)")
    if cfg.random:
        if not cfg.backbone:
            raise ValueError("--random needs --backbone NAME (and optionally --width, --seed)")
        return random_model(cfg.backbone, 1.0 if cfg.width is None else cfg.width, cfg.seed, cfg.input_mode)
    loaded = load_model(cfg.ckpt)
    for name in ("backbone", "width"):
        given = getattr(cfg, name)
        if given is not None and given != loaded.config[name]:
            raise ValueError(f"--{name} {given!r} contradicts checkpoint {cfg.ckpt}'s {name} "
                             f"{loaded.config[name]!r}; leave --{name} out with --ckpt")
    return loaded


# Where a random-init model's outputs go when --out / --cache-dir are not given (it has no checkpoint folder).
RANDOM_ROOT = Path("v3s-eval-random")


def output_dirs(cfg: Any, loaded: LoadedModel) -> tuple[str | os.PathLike | None, Path]:
    """(feature cache folder, default results parent): beside the checkpoint, or RANDOM_ROOT/<model> for --random."""
    if cfg.random:
        base = RANDOM_ROOT / f"{cfg.backbone}-w{loaded.config['width']:g}-{cfg.input_mode}-seed{cfg.seed}"
        return cfg.cache_dir or base / "features", base / "eval"
    return cfg.cache_dir, Path(cfg.ckpt).resolve().parent / "eval"


def extraction_options(cfg: Any, loaded: LoadedModel, log: Callable[[str], None] | None = None,
                       cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Put the model on the config's device and return the `cached_features` keywords its options give.

    Args:
        cfg: a task config with device, batch_size, workers (None: `default_workers()`), cache_dir, use_cache
            and progress (RecognitionConfig, RetrievalConfig, AslanConfig).
        loaded: the model; moved to the device.
        log: see `cached_features`.
        cache_dir: used instead of cfg.cache_dir when given (retrieval's random models have no checkpoint folder).

    Returns:
        {cache_dir, use_cache, device, batch_size, workers, progress, log}.
    """
    device = resolve_device(cfg.device)
    loaded.model.to(device)
    return dict(cache_dir=cfg.cache_dir if cache_dir is None else cache_dir, use_cache=cfg.use_cache, device=device,
                batch_size=cfg.batch_size, workers=default_workers() if cfg.workers is None else cfg.workers,
                progress=cfg.progress, log=log)


def open_dataset(store_path: str | os.PathLike, dataset: str, split: str | None = None) -> Store:
    """Open a store and check that it holds `dataset` (and `split` of it), naming what it does hold.

    Raises:
        FileNotFoundError: no store there. ValueError: not a store, or the dataset / split is absent.
    """
    store = Store(store_path)
    if dataset not in store.datasets:
        raise ValueError(f"dataset {dataset!r} is not in store {str(store_path)!r}; it holds {list(store.datasets)}")
    if split is not None and str(split) not in store.split_ids(dataset):
        raise ValueError(f"split {split!r} is not a split of {dataset!r} in store {str(store_path)!r}; "
                         f"valid splits: {list(store.split_ids(dataset))}")
    return store


def split_videos(store: Store, dataset: str, split: str, role: str) -> list[VideoInfo]:
    """The ok videos with `role` in `split`; ValueError when there are none."""
    videos = store.videos(dataset, str(split), role)
    if not videos:
        raise ValueError(f"split {split!r} of {dataset!r} in store {str(store.path)!r} has no {role} videos")
    return videos


def default_workers() -> int:
    """DataLoader workers when --workers is not given: min(8, CPU cores - 1), at least 0."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))

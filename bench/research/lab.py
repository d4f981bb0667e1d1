"""Shared pieces of the research scripts: the store in RAM, in-RAM V3S pretraining, the frozen-feature probes.

Not a script. `run.py` (one ladder row) and the probe scripts import it. `MemStore` holds a store's split-1 frames
decoded once into RAM (the FrameSource the clip datasets need). Every clip becomes network input the library's one
way: the item carries its geometry (and, for noisy pretext clips, its pixel noise), and
`v3s.shared.spatial.network_input` warps, normalises and adds the noise. Both arms of every comparison go through the
same functions: `video_features` (the demo's retrieval protocol: 10 linspace clips per video, every 2nd frame, centre
crop, mean over the clips) and `probe_all` (cosine kNN, retrieval, linear probe, PCA spectrum).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from v3s.data_manifest import video_group
from v3s.shared.clips import ClipItem, EvalClips, PretextClips, TrainClips, draw_validation
from v3s.shared.labels import LabelSpace
from v3s.shared.metrics.knn import knn_accuracy
from v3s.shared.metrics.linear import linear_probe as fit_linear_probe
from v3s.shared.metrics.recognition import aggregate_clips
from v3s.shared.metrics.retrieval import retrieval_topk
from v3s.shared.models import ClassifierHead, V3SHead, VideoModel, build_backbone, load_backbone_weights
from v3s.shared.spatial import network_input
from v3s.shared.store import Store, VideoInfo
from v3s.train.finetune import labelled_subset

DS = "ucf101"
TAPS = ("pool3", "pool4", "pool", "conv5")


class MemStore:
    """Every frame of a store's split-1 videos of DS decoded once into RAM; the FrameSource the clip datasets need."""

    def __init__(self, path: str) -> None:
        self.store = Store(path)
        t0 = time.perf_counter()
        self.frames = {v.key: self.store.read_frames(v.key, range(v.num_frames)) for v in self.store.videos(DS, "1")}
        self.classes = self.store.classes(DS)
        print(f"loaded {len(self.frames)} videos in {time.perf_counter() - t0:.0f} s", flush=True)

    def videos(self, dataset: str, split: str | None = None, role: str | None = None) -> list[VideoInfo]:
        return self.store.videos(dataset, split, role)

    def split(self, dataset: str, split: str, role: str) -> list[VideoInfo]:
        return self.store.split(dataset, split, role)

    def read_frames(self, key: str, indices: Sequence[int]) -> np.ndarray:
        return self.frames[key][np.asarray(list(indices))]


def collate(items: Iterable[ClipItem]) -> ClipItem:
    """A batch: a ClipItem of stacked fields (what a DataLoader gives)."""
    return default_collate(list(items))


def batch_input(batch: ClipItem, size: int, clips: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """Network input of a batch through its items' geometry; `clips` replaces the batch's frames (e.g. shuffled in
    time) and `noise` its pixel noise ((B, 2) sigma, seed), both optional."""
    return network_input(batch.clip if clips is None else clips, batch.geometry, size,
                         batch.noise if noise is None else noise)


@dataclass(frozen=True)
class PretrainSpec:
    """One in-RAM pretraining run; the defaults are the demo's first recipe (canvas 224, no pretext noise: ladder row 0)."""

    preset: str = "all"
    backbone: str = "r21d"
    width: float = 0.25
    input_mode: str = "diff"
    canvas: int = 224
    crop: int = 112
    size: int = 32
    clip_len: int = 16
    steps: int = 1500
    bs: int = 16
    lr: float = 0.05
    warmup: int = 0
    dropout: float = 0.5
    weight_decay: float = 5e-4
    seed: int = 0
    adam: bool = False
    temporal_init: str = "he"  # "he" (the library's), or zero-sum temporal kernels in the "stem" or in "all" convs
    post_noise: float = 0.0  # pretext clips get fresh Gaussian pixel noise after the warp, sigma ~ U(0, this) grey levels


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up for `warmup` steps, then cosine to 0 (warmup 0: the library's per-step cosine)."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def epoch_keys(n: int, bs: int, rng: np.random.Generator) -> Iterable[list[tuple[int, int]]]:
    """Endless batches of (epoch, position) keys: each epoch a fresh permutation of 0..n-1, batches crossing epochs."""
    epoch, order = 0, []
    while True:
        if len(order) < bs:
            order += [(epoch, int(i)) for i in rng.permutation(n)]
            epoch += 1
        picks, order = order[:bs], order[bs:]
        yield picks


def zero_mean_temporal(bb: torch.nn.Module, scope: str = "stem") -> int:
    """Make temporal kernels sum to zero over time (each kernel minus its temporal mean), in place.

    A zero-sum temporal kernel ignores whatever is static in the clip, so the layer starts out reading changes, as a
    frame-difference input does, while the network still takes RGB frames and may learn any kernel.
    scope: "stem" (the stem's temporal convolution) or "all" (every convolution with a temporal extent > 1).
    Returns the number of convolutions changed.
    """
    convs = [m for m in (bb.stages["conv1"] if scope == "stem" else bb).modules()
             if isinstance(m, torch.nn.Conv3d) and m.kernel_size[0] > 1]
    with torch.no_grad():
        for m in convs:
            m.weight -= m.weight.mean(dim=2, keepdim=True)
    return len(convs)


def build_v3s(spec: PretrainSpec, ls: LabelSpace) -> VideoModel:
    """Backbone + V3S head, initialised from spec.seed (the random arm is the same backbone before training)."""
    torch.manual_seed(spec.seed)
    bb = build_backbone(spec.backbone, spec.width, spec.input_mode)
    if spec.temporal_init != "he":
        zero_mean_temporal(bb, spec.temporal_init)
    return VideoModel(bb, V3SHead(bb.feature_dim, ls.n_spatial, ls.n_temporal, dropout=spec.dropout))


def pretext_clips(mem: MemStore, spec: PretrainSpec, ls: LabelSpace, role: str, seed: int,
                  noise: float = 0.0) -> PretextClips:
    """Split 1's `role` videos as pretext items at the spec's geometry (clip side, canvas, crop)."""
    return PretextClips(mem, DS, "1", role, ls, spec.clip_len, seed=seed, clip_size=spec.size, canvas=spec.canvas,
                        crop=spec.crop, noise=noise)


def pretrain(mem: MemStore, spec: PretrainSpec, log: Callable[[str], None] = print) -> tuple[VideoModel, dict]:
    """Train the pretext on split 1's train list for spec.steps steps; returns the model and a record."""
    ls = LabelSpace.preset(spec.preset)
    model = build_v3s(spec, ls)
    train = pretext_clips(mem, spec, ls, "train", spec.seed, noise=spec.post_noise)
    if spec.adam:
        opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay)
    keys = epoch_keys(len(train), spec.bs, np.random.default_rng(spec.seed))
    t0 = time.perf_counter()
    curve = []
    run = np.zeros(3)
    model.train()
    for step in range(spec.steps):
        batch = collate(train[k] for k in next(keys))
        ys, yt = batch.targets[:, 0], batch.targets[:, 1]
        x = batch_input(batch, spec.size)   # with each clip's pixel noise (spec.post_noise > 0)
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, spec.steps, spec.lr, spec.warmup)
        ps, pt = model(x)
        loss = F.cross_entropy(ps, ys) + F.cross_entropy(pt, yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run += [float(loss.detach()) * len(ys), int((ps.argmax(1) == ys).sum()), int((pt.argmax(1) == yt).sum())]
        if (step + 1) % 100 == 0 or step + 1 == spec.steps:
            n = 100 * spec.bs if (step + 1) % 100 == 0 else ((step + 1) % 100) * spec.bs
            rec = dict(step=step + 1, loss=round(run[0] / n, 3), train_s=round(run[1] / n, 3),
                       train_t=round(run[2] / n, 3), s=round(time.perf_counter() - t0))
            log(json.dumps(rec))
            curve.append(rec)
            run[:] = 0
    return model, dict(spec=asdict(spec), pretrain_s=round(time.perf_counter() - t0, 1), curve=curve,
                       chance_s=1 / ls.n_spatial, chance_t=1 / ls.n_temporal)


def pretext_heldout(model: VideoModel, mem: MemStore, spec: PretrainSpec, role: str = "test", reps: int = 2,
                    mode: str = "plain") -> tuple[float, float]:
    """Pretext accuracy (spatial, temporal) on split 1's `role` videos (test: groups never seen), fixed draws.

    mode: "plain", "shuffle" (the clip's frames permuted in time: a motion reader falls to chance), or "noiseN"
    (Gaussian pixel noise of sigma N grey levels, fresh per pixel and frame, added AFTER the spatial warp: it masks
    whatever the warp did to the source's own pixel noise, and nothing else).
    """
    ls = LabelSpace.preset(spec.preset)
    ds = pretext_clips(mem, spec, ls, role, seed=999)
    g = torch.Generator().manual_seed(123)
    level = float(mode[5:]) if mode.startswith("noise") else 0.0
    if mode not in ("plain", "shuffle") and not mode.startswith("noise"):
        raise ValueError(f"mode {mode!r} is not plain, shuffle or noiseN")
    model.eval()
    right = np.zeros(2)
    n = 0
    with torch.no_grad():
        for rep in range(reps):
            items = [ds[(10_000 + rep, i)] for i in range(len(ds))]   # fixed draws: epochs no training run reaches
            for b0 in range(0, len(items), 50):
                batch = collate(items[b0:b0 + 50])
                ys, yt = batch.targets[:, 0], batch.targets[:, 1]
                clips = batch.clip
                if mode == "shuffle":
                    clips = clips[:, torch.randperm(clips.shape[1], generator=g)]
                noise = None
                if level > 0:   # a fixed level, a fresh seed per clip
                    seeds = torch.randint(0, 2 ** 31, (len(ys),), generator=g, dtype=torch.int64).double()
                    noise = torch.stack([torch.full((len(ys),), level, dtype=torch.float64), seeds], 1)
                ps, pt = model(batch_input(batch, spec.size, clips=clips, noise=noise))
                right += [int((ps.argmax(1) == ys).sum()), int((pt.argmax(1) == yt).sum())]
                n += len(ys)
    model.train()
    return float(right[0] / n), float(right[1] / n)


def group_ids(videos: Sequence[VideoInfo]) -> np.ndarray:
    """One id per (class, group) (UCF101-style names v_<Class>_gXX_cYY): the unit a split never straddles."""
    names = [(v.class_name, video_group(v.rel_path) or v.rel_path) for v in videos]
    uniq = {n: i for i, n in enumerate(sorted(set(names)))}
    return np.array([uniq[n] for n in names])


def eval_clips(mem: MemStore, role: str, n_clips: int, clip_len: int, frame_step: int, size: int) -> EvalClips:
    """Split 1's `role` videos as n_clips linspace clips each, centre-cropped to size (no resize)."""
    return EvalClips(mem, DS, "1", role, n_clips=n_clips, clip_len=clip_len, frame_step=frame_step, clip_size=size)


@torch.no_grad()
def video_features(bb: torch.nn.Module, mem: MemStore, role: str, taps=TAPS, frame_step: int = 2,
                   n_clips: int = 10, size: int = 32, clip_len: int = 16, bn: str = "eval") -> dict:
    """Per-video features of split 1's `role` videos: each tap's output averaged over n_clips linspace clips.

    bn: "eval" (running statistics, the demo's protocol) or "batch" (each batch of 50 clips normalised by its own
    statistics, running statistics untouched).
    Returns: {"feats": {tap: (N, D) float64}, "labels": (N,), "groups": (N,)}.
    """
    ds = eval_clips(mem, role, n_clips, clip_len, frame_step, size)
    bb.eval()
    saved = None
    if bn == "batch":
        saved = {k: v.clone() for k, v in bb.state_dict().items()}
        bb.train()
    sums = {t: None for t in taps}
    for b0 in range(0, len(ds), 50):
        batch = collate(ds[i] for i in range(b0, min(len(ds), b0 + 50)))
        out = bb.forward_features(batch_input(batch, size), taps)
        for t in taps:
            f = out[t].double()
            if sums[t] is None:
                sums[t] = torch.zeros(len(ds.videos), f.shape[1], dtype=torch.float64)
            sums[t].index_add_(0, batch.video, f)
    if saved is not None:
        bb.load_state_dict(saved)
    bb.eval()
    return dict(feats={t: (s / n_clips).numpy() for t, s in sums.items()},
                labels=np.array([v.label for v in ds.videos]), groups=group_ids(ds.videos))


@torch.no_grad()
def adapt_bn(bb: torch.nn.Module, mem: MemStore, frame_step: int = 2, size: int = 32, clip_len: int = 16,
             n_clips: int = 2) -> None:
    """Re-estimate every BatchNorm's running statistics on the train list's evaluation clips (AdaBN), in place."""
    for m in bb.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
    ds = eval_clips(mem, "train", n_clips, clip_len, frame_step, size)
    bb.train()
    for b0 in range(0, len(ds), 50):
        bb(batch_input(collate(ds[i] for i in range(b0, min(len(ds), b0 + 50))), size))
    bb.eval()


def knn(train_f, train_y, test_f, test_y, ks=(1, 5, 20), temperature: float = 0.07) -> dict:
    """Weighted cosine kNN (DINO, `v3s.shared.metrics.knn`): votes exp(sim / T) of the k most similar train videos;
    {k: top-1 on the test videos} (a k above the train videos' count votes with all of them)."""
    n_cls = int(max(train_y.max(), test_y.max())) + 1
    res = knn_accuracy(test_f, test_y, train_f, train_y, n_cls, ks=[min(k, len(train_y)) for k in ks],
                       temperature=temperature)
    return {k: res[min(k, len(train_y))]["top1"] for k in ks}


def linear_probe(train_f, train_y, groups, test_f, test_y, cs=(1e-3, 1e-2, 1e-1, 1, 10, 100)) -> dict:
    """Logistic regression on standardised features; C chosen by 5-fold group CV on the train videos
    (`v3s.shared.metrics.linear`)."""
    n_cls = int(max(train_y.max(), test_y.max())) + 1
    r = fit_linear_probe(train_f, train_y, groups, test_f, test_y, n_cls, cs=cs, n_folds=5, max_iter=3000)
    return dict(top1=float(r.top1), C=r.C, cv=round(float(r.cv_mean.max()), 3))


def pca_share(f: np.ndarray, k: int = 3) -> float:
    """Share of the total variance of the (centred) features in their top k principal components."""
    s = np.linalg.svd(f - f.mean(0), compute_uv=False) ** 2
    return float(s[:k].sum() / s.sum())


def drop_top_pcs(train_f: np.ndarray, test_f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre both sets on the train mean and project out the train set's top k principal directions."""
    mu = train_f.mean(0)
    a, b = train_f - mu, test_f - mu
    if k == 0:
        return a, b
    _, _, vt = np.linalg.svd(a, full_matrices=False)
    p = vt[:k].T
    return a - a @ p @ p.T, b - b @ p @ p.T


def probe_all(train: dict, test: dict, taps=None, linear: bool = True, extra: bool = False) -> dict:
    """Every probe on every tap: kNN k=1/5/20, retrieval top-1/5, linear probe, top-3 PC variance share.

    extra: also kNN after centring, after removing the top 1/2/3/5 PCs, and on z-scored features.
    """
    out = {}
    for t in taps or train["feats"]:
        a, b = train["feats"][t], test["feats"][t]
        ya, yb = train["labels"], test["labels"]
        r = dict(knn=knn(a, ya, b, yb), retrieval=retrieval_topk(b, yb, a, ya, (1, 5)), pc3=round(pca_share(a), 3),
                 dim=int(a.shape[1]))
        if linear:
            r["linear"] = linear_probe(a, ya, train["groups"], b, yb)
        if extra:
            for k in (0, 1, 2, 3, 5):
                ca, cb = drop_top_pcs(a, b, k)
                r[f"knn_drop{k}"] = knn(ca, ya, cb, yb)
            mu, sd = a.mean(0), a.std(0) + 1e-8
            r["knn_z"] = knn((a - mu) / sd, ya, (b - mu) / sd, yb)
        out[t] = r
    return out


def finetune(mem: MemStore, spec: PretrainSpec, init: dict | None, seed: int, steps: int = 400, bs: int = 16,
             lr: float = 0.05, bb_mult: float = 1.0, per_class: int = 10, frame_step: int = 2, val_videos: int = 30,
             log: Callable[[str], None] = print) -> dict:
    """The demo's finetuning in RAM (same videos, schedule and augmentation as `v3s-train finetune`); video top-1.

    init: a pretrained backbone state_dict, or None for random init (built from `seed`, as the library does).
    """
    vids = mem.videos(DS, "1", "train")
    train_pos, _ = draw_validation(len(vids), val_videos, seed, what="train list")
    pos = labelled_subset(vids, train_pos, per_class, seed)
    torch.manual_seed(seed)
    bb = build_backbone(spec.backbone, spec.width, spec.input_mode)
    model = VideoModel(bb, ClassifierHead(bb.feature_dim, len(mem.classes), dropout=0.5))
    if init is not None:
        missing, unexpected = load_backbone_weights(bb, init, prefix="")
        assert not missing and not unexpected, (missing, unexpected)
    opt = torch.optim.SGD([{"params": list(bb.parameters()), "lr": lr * bb_mult},
                           {"params": list(model.head.parameters()), "lr": lr}], lr=lr, momentum=0.9,
                          weight_decay=5e-4)
    base = [pg["lr"] for pg in opt.param_groups]
    ds = TrainClips(mem, DS, "1", "train", spec.clip_len, seed=seed, videos=[vids[p] for p in pos],
                    frame_step=frame_step, clip_size=spec.size)
    keys = epoch_keys(len(ds), bs, np.random.default_rng(seed))
    t0 = time.perf_counter()
    model.train()
    losses = []
    for step in range(steps):
        batch = collate(ds[k] for k in next(keys))
        for pg, b in zip(opt.param_groups, base):
            pg["lr"] = b * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = F.cross_entropy(model(batch_input(batch, spec.size)), batch.targets[:, 0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    train_s = time.perf_counter() - t0
    ev = eval_clips(mem, "test", 10, spec.clip_len, frame_step, spec.size)
    model.eval()
    scores, vidx = [], []
    with torch.no_grad():
        for b0 in range(0, len(ev), 100):
            batch = collate(ev[i] for i in range(b0, min(len(ev), b0 + 100)))
            scores.append(model(batch_input(batch, spec.size)).numpy())
            vidx.append(batch.video.numpy())
    vid = aggregate_clips(np.concatenate(scores), np.concatenate(vidx), len(ev.videos), "prob")
    top1 = float((vid.argmax(1) == np.array([v.label for v in ev.videos])).mean())
    res = dict(seed=seed, init="v3s" if init is not None else "random", steps=steps, bb_mult=bb_mult,
               top1=top1, final_loss=round(float(np.mean(losses[-25:])), 3), train_s=round(train_s))
    log("FINETUNE " + json.dumps(res))
    return res


def fmt(x: float) -> str:
    """A fraction as a percentage with one decimal."""
    return f"{100 * x:.1f}"

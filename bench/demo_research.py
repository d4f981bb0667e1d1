"""Research for the CPU demo (issue 8): V3S pretraining vs random init on the synthetic set, library pieces only.

Frames are held in RAM (the store is decoded once), so the numbers measure the model, not JPEG decoding.

    .venv/bin/v3s-prep synth /tmp/dr/synth && .venv/bin/v3s-prep extract /tmp/dr/synth --dataset ucf101 \
        --out /tmp/dr/store64 --size 64x86
    .venv/bin/python bench/demo_research.py pretrain --store /tmp/dr/store64 --out /tmp/dr/pt_a --steps 1500
    .venv/bin/python bench/demo_research.py finetune --store /tmp/dr/store64 --init /tmp/dr/pt_a/backbone.pt \
        --per-class 10 --seed 0     # and --init none for random init
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from v3s.evaluate.recognition import aggregate_clips
from v3s.shared.clips import EvalClips, PretextClips, TrainClips
from v3s.shared.labels import LabelSpace
from v3s.shared.models import ClassifierHead, V3SHead, VideoModel, build_backbone, load_backbone_weights
from v3s.shared.spatial import (eval_batch, finetune_batch, normalize, pretext_batch, pretext_homographies,
                                sample_spatial_params, warp_clips)
from v3s.shared.store import Store

DS = "ucf101"


class MemStore:
    """Every frame of a store's split-1 videos decoded once into RAM; the FrameSource the clip datasets need."""

    def __init__(self, path: str) -> None:
        self.store = Store(path)
        t0 = time.perf_counter()
        self.frames = {v.key: self.store.read_frames(v.key, range(v.num_frames)) for v in self.store.videos(DS, "1")}
        print(f"loaded {len(self.frames)} videos in {time.perf_counter() - t0:.0f} s", flush=True)

    def videos(self, dataset, split=None, role=None):
        return self.store.videos(dataset, split, role)

    def read_frames(self, key, indices):
        return self.frames[key][np.asarray(list(indices))]


def _collate(items):
    return [torch.stack([it[0] for it in items])] + [torch.tensor([it[k] for it in items]) for k in range(1, len(items[0]))]


def _lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _load(args) -> MemStore:
    torch.set_num_threads(args.threads)
    return MemStore(args.store)


def _pretext(clips, ys, ls, g, size: int, canvas: int):
    """pretext_batch with a chosen canvas: the 112 crop then covers 112/canvas of the frame (paper: 224, a half)."""
    if canvas == 224:
        return pretext_batch(clips, ys, ls, g, size)
    h = sample_spatial_params(ys, ls, g, tuple(clips.shape[2:4]), size, canvas=canvas, crop=112)
    return normalize(warp_clips(clips, h, size))


def pretext_eval(model, ds: PretextClips, ls: LabelSpace, out_size: int, reps: int = 3, mode: str = "plain",
                 bs: int = 50, canvas: int = 224) -> tuple[float, float]:
    """Held-out pretext accuracy (spatial, temporal) over reps passes of `ds` with fixed draws.

    mode: plain; shuffle (frames permuted in time); still (the first frame repeated); zoom (identity class only,
    cropped at the projection classes' zoom: reports the fraction predicted as a projection class); ident
    (identity class at its own zoom: the same fraction, the baseline for zoom).
    """
    model.eval()
    g = torch.Generator().manual_seed(123)
    right_s = right_t = n = 0
    proj = [i for i, c in enumerate(ls.spatial_classes) if c.kind == "projection"]
    with torch.no_grad():
        for rep in range(reps):
            ds.set_epoch(10_000 + rep)
            items = [ds[i] for i in range(len(ds))]
            for b0 in range(0, len(items), bs):
                clips, ys, yt = _collate(items[b0:b0 + bs])
                if mode == "shuffle":
                    clips = clips[:, torch.randperm(clips.shape[1], generator=g)]
                elif mode == "still":
                    clips = clips[:, :1].expand_as(clips).contiguous()
                if mode in ("zoom", "ident"):
                    ys = torch.zeros_like(ys)
                if mode == "ident":
                    x = _pretext(clips, ys, ls, g, out_size, canvas)
                elif mode == "zoom":
                    side = torch.tensor([ls.sp[int(k)] for k in torch.randint(len(ls.sp), (len(ys),), generator=g)],
                                        dtype=torch.float64) * canvas
                    off = torch.rand(len(ys), 2, generator=g, dtype=torch.float64) * (canvas - side)[:, None]
                    boxes = torch.stack([off[:, 0].floor(), off[:, 1].floor(), side], 1)
                    h = pretext_homographies(ys, ls, boxes, tuple(clips.shape[2:4]), out_size, canvas)
                    x = normalize(warp_clips(clips, h, out_size))
                else:
                    x = _pretext(clips, ys, ls, g, out_size, canvas)
                ps, pt = model(x)
                if mode in ("zoom", "ident"):
                    right_s += int(torch.isin(ps.argmax(1), torch.tensor(proj)).sum())
                else:
                    right_s += int((ps.argmax(1) == ys).sum())
                right_t += int((pt.argmax(1) == yt).sum())
                n += len(ys)
    model.train()
    return right_s / n, right_t / n


def pretrain(args) -> None:
    mem = _load(args)
    torch.manual_seed(args.seed)
    ls = LabelSpace.preset(args.preset)
    bb = build_backbone("r21d", args.width)
    model = VideoModel(bb, V3SHead(bb.feature_dim, ls.n_spatial, ls.n_temporal, dropout=args.dropout))
    print(f"params {sum(p.numel() for p in bb.parameters())}, spatial {ls.n_spatial}, temporal {ls.n_temporal}")
    train = PretextClips(mem, DS, "1", "train", ls, args.clip_len, seed=args.seed)
    held = PretextClips(mem, DS, "1", "test", ls, args.clip_len, seed=999)
    if args.adam:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    t_mark, run_s, run_t, run_n = t0, 0, 0, 0
    epoch, order = 0, []
    log = []
    for step in range(args.steps):
        if len(order) < args.bs:
            train.set_epoch(epoch)
            epoch += 1
            order += [(epoch - 1, int(i)) for i in rng.permutation(len(train))]
        picks, order = order[:args.bs], order[args.bs:]
        items = []
        for ep, i in picks:
            train.set_epoch(ep)
            items.append(train[i])
        clips, ys, yt = _collate(items)
        x = _pretext(clips, ys, ls, g, args.size, args.canvas)
        for pg in opt.param_groups:
            pg["lr"] = _lr_at(step, args.steps, args.lr, args.warmup)
        ps, pt = model(x)
        loss = F.cross_entropy(ps, ys) + F.cross_entropy(pt, yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run_s += int((ps.argmax(1) == ys).sum())
        run_t += int((pt.argmax(1) == yt).sum())
        run_n += len(ys)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            now = time.perf_counter()
            rate = args.log_every * args.bs / (now - t_mark)
            rec = dict(step=step + 1, loss=round(loss.item(), 3), train_s=round(run_s / run_n, 3),
                       train_t=round(run_t / run_n, 3), clips_s=round(rate, 1), elapsed=round(now - t0),
                       load=round(__import__("os").getloadavg()[0], 1))
            print(json.dumps(rec), flush=True)
            log.append(rec)
            t_mark, run_s, run_t, run_n = now, 0, 0, 0
    wall = time.perf_counter() - t0
    torch.save(bb.state_dict(), out / "backbone.pt")
    torch.save(model.state_dict(), out / "model.pt")
    res = dict(args=vars(args), wall_s=round(wall), chance_s=1 / ls.n_spatial, chance_t=1 / ls.n_temporal)
    for mode in ("plain", "shuffle", "still", "ident", "zoom"):
        if mode in ("zoom", "ident") and not ls.sp:
            continue
        s, t = pretext_eval(model, held, ls, args.size, mode=mode, canvas=args.canvas)
        res[f"held_{mode}"] = (round(s, 3), round(t, 3))
    print(json.dumps(res), flush=True)
    (out / "result.json").write_text(json.dumps(dict(res, log=log), indent=1))


def _subset(mem: MemStore, per_class: int, seed: int):
    vids = mem.videos(DS, "1", "train")
    rng = np.random.default_rng(seed)
    out = []
    for c in sorted({v.label for v in vids}):
        of = [v for v in vids if v.label == c]
        out += [of[i] for i in rng.permutation(len(of))[:per_class]]
    return out


def finetune(args) -> dict:
    mem = _load(args)
    return run_finetune(mem, args)


def _features(bb, mem, n=40, size=64, clip_len=16):
    ds = EvalClips(mem, DS, "1", "test", n_clips=1, clip_len=clip_len)
    clips = torch.stack([ds[i][0] for i in range(n)])
    bb.eval()
    with torch.no_grad():
        f = bb(eval_batch(clips, size))
    bb.train()
    return f


def run_finetune(mem: MemStore, args) -> dict:
    torch.manual_seed(args.seed)
    bb = build_backbone("r21d", args.width)
    if args.init != "none":
        f_rand = _features(bb, mem, size=args.size, clip_len=args.clip_len)
        missing, unexpected = load_backbone_weights(bb, torch.load(args.init), prefix="")
        f_init = _features(bb, mem, size=args.size, clip_len=args.clip_len)
        cos = float(F.cosine_similarity(f_rand, f_init).mean())
        print(f"loaded {args.init}: missing {len(missing)} unexpected {len(unexpected)}; "
              f"mean cosine(random-init features, loaded features) = {cos:.3f}", flush=True)
    model = VideoModel(bb, ClassifierHead(bb.feature_dim, 10, dropout=args.dropout))
    if args.probe:
        for p in bb.parameters():
            p.requires_grad_(False)
    groups = [dict(params=list(model.head.parameters()), lr_mult=1.0)]
    if not args.probe:
        groups.append(dict(params=list(bb.parameters()), lr_mult=args.bb_mult))
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    vids = _subset(mem, args.per_class, args.seed)
    ds = TrainClips(mem, DS, "1", "train", args.clip_len, seed=args.seed, videos=vids)
    g = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    steps = args.epochs * math.ceil(len(ds) / args.bs)
    t0 = time.perf_counter()
    step = 0
    for epoch in range(args.epochs):
        ds.set_epoch(epoch)
        perm = rng.permutation(len(ds))
        run_l = 0.0
        for b0 in range(0, len(perm), args.bs):
            clips, y = _collate([ds[int(i)] for i in perm[b0:b0 + args.bs]])
            if args.flip:
                x = finetune_batch(clips, g, args.size)
            else:  # random crop, no flip: a flip turns TranslateLeft into TranslateRight on the synthetic set
                h, w = clips.shape[2:4]
                m = torch.eye(3, dtype=torch.float64).repeat(len(y), 1, 1)
                m[:, 0, 2] = torch.randint(0, w - args.size + 1, (len(y),), generator=g).double()
                m[:, 1, 2] = torch.randint(0, h - args.size + 1, (len(y),), generator=g).double()
                x = normalize(warp_clips(clips, m, args.size))
            for pg in opt.param_groups:
                pg["lr"] = _lr_at(step, steps, args.lr, args.warmup) * pg["lr_mult"]
            if args.probe:
                bb.eval()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_l += float(loss) * len(y)
            step += 1
        if (epoch + 1) % max(1, args.epochs // 5) == 0:
            print(f"epoch {epoch + 1} loss {run_l / len(ds):.3f} {time.perf_counter() - t0:.0f}s", flush=True)
    train_s = time.perf_counter() - t0
    ev = EvalClips(mem, DS, "1", args.eval_role, n_clips=10, clip_len=args.clip_len)
    model.eval()
    scores, labels, vidx = [], [], []
    t1 = time.perf_counter()
    with torch.no_grad():
        for b0 in range(0, len(ev), 100):
            clips, y, vi = _collate([ev[i] for i in range(b0, min(len(ev), b0 + 100))])
            scores.append(model(eval_batch(clips, args.size)).numpy())
            labels.append(y.numpy())
            vidx.append(vi.numpy())
    scores, labels, vidx = np.concatenate(scores), np.concatenate(labels), np.concatenate(vidx)
    nv = len(ev.videos)
    vid_scores = aggregate_clips(scores, vidx, nv, "prob")
    vid_labels = np.array([v.label for v in ev.videos])
    top1 = float((vid_scores.argmax(1) == vid_labels).mean())
    conf = np.zeros((10, 10), dtype=int)
    np.add.at(conf, (vid_labels, vid_scores.argmax(1)), 1)
    print("confusion (rows true, cols predicted):\n" + str(conf), flush=True)
    clip_top1 = float((scores.argmax(1) == labels).mean())
    res = dict(init=args.init, per_class=args.per_class, seed=args.seed, epochs=args.epochs, lr=args.lr,
               bb_mult=args.bb_mult, probe=args.probe, flip=args.flip, top1=round(top1, 3),
               clip_top1=round(clip_top1, 3), train_s=round(train_s), eval_s=round(time.perf_counter() - t1),
               clips_s=round(steps * args.bs / train_s, 1), steps=steps)
    print("RESULT " + json.dumps(res), flush=True)
    return res


def compare(args) -> None:
    """Both arms (each --init in turn) for each seed in --seeds, in one process."""
    mem = _load(args)
    rows = []
    for seed in args.seeds:
        for init in args.inits:
            a = argparse.Namespace(**{**vars(args), "seed": seed, "init": init})
            rows.append(run_finetune(mem, a))
    for init in args.inits:
        tops = [r["top1"] for r in rows if r["init"] == init]
        print(f"SUMMARY {init}: top1 per seed {tops}, mean {np.mean(tops):.3f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("pretrain", "finetune", "compare"):
        s = sub.add_parser(name)
        s.add_argument("--store", required=True)
        s.add_argument("--width", type=float, default=0.25)
        s.add_argument("--size", type=int, default=64)
        s.add_argument("--clip-len", type=int, default=16)
        s.add_argument("--bs", type=int, default=16)
        s.add_argument("--lr", type=float, default=0.05)
        s.add_argument("--warmup", type=int, default=50)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--dropout", type=float, default=0.0)
        s.add_argument("--threads", type=int, default=2)
    pre = sub.choices["pretrain"]
    pre.add_argument("--out", required=True)
    pre.add_argument("--steps", type=int, default=1000)
    pre.add_argument("--preset", default="all")
    pre.add_argument("--log-every", type=int, default=50)
    pre.add_argument("--adam", action="store_true")
    pre.add_argument("--canvas", type=int, default=224)
    for name in ("finetune", "compare"):
        s = sub.choices[name]
        s.add_argument("--per-class", type=int, default=10)
        s.add_argument("--epochs", type=int, default=30)
        s.add_argument("--bb-mult", type=float, default=1.0)
        s.add_argument("--probe", action="store_true")
        s.add_argument("--flip", action="store_true")
        s.add_argument("--eval-role", default="test")
    sub.choices["finetune"].add_argument("--init", default="none")
    sub.choices["compare"].add_argument("--inits", nargs="+", required=True)
    sub.choices["compare"].add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = p.parse_args()
    {"pretrain": pretrain, "finetune": finetune, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    main()

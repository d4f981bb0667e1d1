"""One ladder row: in-RAM V3S pretraining, held-out pretext accuracy, then the frozen-feature probes of both arms.

    OMP_NUM_THREADS=1 .venv/bin/python bench/research/run.py --store STORE --out OUT [--input-mode rgb] [--steps N]
        [--load OUT_OF_AN_EARLIER_RUN] [--finetune-seeds 0 1] [--extra] [--bn eval|batch|adapt]
        # every lab.PretrainSpec field is an option (--canvas 128 --post-noise 6 ...); see --help

Writes OUT/result.json (every number) and OUT/model.pt; prints one summary line per arm and tap. The random arm is
the same backbone built from the same seed and read through the same protocol (no pretraining).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

import lab


def _arm_probes(bb, mem, args, save: Path | None = None, cache: Path | None = None) -> dict:
    """Probes of one arm; features go to `save` (.npz); `cache` (a JSON path, features beside it) keeps a random
    arm's result, which depends only on its spec."""
    if cache is not None and cache.is_file():
        if save is not None:
            shutil.copyfile(cache.with_suffix(".npz"), save)
        return json.loads(cache.read_text())
    if args.bn == "adapt":
        bb = copy.deepcopy(bb)
        lab.adapt_bn(bb, mem, frame_step=args.feat_frame_step)
    bn = "batch" if args.bn == "batch" else "eval"
    kw = dict(taps=args.taps, frame_step=args.feat_frame_step, bn=bn)
    train, test = lab.video_features(bb, mem, "train", **kw), lab.video_features(bb, mem, "test", **kw)
    res = lab.probe_all(train, test, linear=not args.no_linear, extra=args.extra)
    arrays = {f"{role}_{t}": d["feats"][t] for role, d in (("train", train), ("test", test)) for t in d["feats"]}
    arrays.update(train_labels=train["labels"], test_labels=test["labels"], train_groups=train["groups"])
    if save is not None:
        np.savez(save, **arrays)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache.with_suffix(".npz"), **arrays)
        cache.write_text(json.dumps(res))
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--store", required=True)
    p.add_argument("--out", required=True)
    for f in fields(lab.PretrainSpec):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            p.add_argument(flag, action="store_true")
        else:
            p.add_argument(flag, type=type(f.default), default=f.default)
    p.add_argument("--load", help="reuse OUT/model.pt of an earlier run with the same spec instead of pretraining")
    p.add_argument("--taps", nargs="+", default=list(lab.TAPS))
    p.add_argument("--bn", default="eval", choices=("eval", "batch", "adapt"))
    p.add_argument("--feat-frame-step", type=int, default=2)
    p.add_argument("--extra", action="store_true", help="kNN after centring / removing top PCs / z-scoring")
    p.add_argument("--no-linear", action="store_true")
    p.add_argument("--no-random", action="store_true")
    p.add_argument("--pretext-only", action="store_true", help="stop after the held-out pretext accuracies")
    p.add_argument("--no-probes", action="store_true", help="skip the feature probes (e.g. finetuning only)")
    p.add_argument("--random-seed", type=int, default=None, help="seed of the random arm (default: --seed)")
    p.add_argument("--finetune-seeds", type=int, nargs="*", default=[])
    p.add_argument("--finetune-steps", type=int, default=400)
    p.add_argument("--bb-mult", type=float, default=1.0, help="V3S arm's backbone lr multiplier in finetuning")
    p.add_argument("--finetune-per-class", type=int, default=10, help="labelled train videos per class")
    p.add_argument("--finetune-val-videos", type=int, default=30,
                   help="train videos held out (as `v3s-train finetune --val-videos`) before the labelled draw")
    args = p.parse_args()
    torch.set_num_threads(1)
    spec = lab.PretrainSpec(**{f.name: getattr(args, f.name) for f in fields(lab.PretrainSpec)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mem = lab.MemStore(args.store)
    t0 = time.perf_counter()
    res: dict = dict(argv=vars(args))
    if args.load:
        model = lab.build_v3s(spec, lab.LabelSpace.preset(spec.preset))
        model.load_state_dict(torch.load(Path(args.load) / "model.pt"))
        prev = json.loads((Path(args.load) / "result.json").read_text())
        res.update({k: prev[k] for k in ("pretrain", "pretext") if k in prev})
    else:
        model, res["pretrain"] = lab.pretrain(mem, spec)
        torch.save(model.state_dict(), out / "model.pt")
        s, t = lab.pretext_heldout(model, mem, spec)
        ss, ts = lab.pretext_heldout(model, mem, spec, mode="shuffle")
        res["pretext"] = dict(spatial=s, temporal=t, spatial_shuffled=ss, temporal_shuffled=ts)
        print("PRETEXT " + json.dumps(res["pretext"]), flush=True)
    if args.pretext_only:
        res["wall_s"] = round(time.perf_counter() - t0)
        (out / "result.json").write_text(json.dumps(res, indent=1, default=str))
        return
    res["probes"] = {} if args.no_probes else {"v3s": _arm_probes(model.backbone, mem, args, out / "feats_v3s.npz")}
    if not args.no_random and not args.no_probes:
        rspec = lab.PretrainSpec(**{**vars(spec), "seed": spec.seed if args.random_seed is None else args.random_seed})
        rand = lab.build_v3s(rspec, lab.LabelSpace.preset(spec.preset))
        key = hashlib.sha256(json.dumps([str(Path(args.store).resolve()), rspec.backbone, rspec.width,
                                         rspec.input_mode, rspec.seed, rspec.preset, args.taps, args.bn,
                                         args.feat_frame_step, args.extra, args.no_linear]).encode()).hexdigest()[:16]
        res["probes"]["random"] = _arm_probes(rand.backbone, mem, args, out / "feats_random.npz",
                                                Path(args.store).parent / "random_cache" / f"{key}.json")
    res["finetune"] = []
    ft = dict(steps=args.finetune_steps, per_class=args.finetune_per_class, val_videos=args.finetune_val_videos)
    for seed in args.finetune_seeds:
        res["finetune"].append(lab.finetune(mem, spec, model.backbone.state_dict(), seed, bb_mult=args.bb_mult, **ft))
        if not args.no_random:
            res["finetune"].append(lab.finetune(mem, spec, None, seed, **ft))
    res["wall_s"] = round(time.perf_counter() - t0)
    (out / "result.json").write_text(json.dumps(res, indent=1, default=str))
    res = json.loads((out / "result.json").read_text())  # one form for both arms (a cached arm has str keys)
    for arm, taps in res["probes"].items():
        for tap, r in taps.items():
            lin = f" linear {lab.fmt(r['linear']['top1'])}" if "linear" in r else ""
            print(f"SUMMARY {arm:6s} {tap:6s} knn1/5/20 {'/'.join(lab.fmt(v) for v in r['knn'].values())} "
                  f"retr1 {lab.fmt(r['retrieval']['1'])}{lin} pc3 {r['pc3']}", flush=True)
    print(f"wall {res['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()

"""Has a pretrained run's representation collapsed? Spread of its pooled features and logits over held-out pretext clips.

    OMP_NUM_THREADS=1 .venv/bin/python bench/research/collapse.py STORE RUN_DIR [RUN_DIR ...]

For each run (run.py's OUT), and for the same network at its initialisation: the share of the 128 pooled feature
dimensions that are dead (spread across clips < 1e-3 of the largest dimension's), the spread of the features across
clips relative to their mean size, and the spread of each head's logits across clips (0: the head ignores the clip).
"""
import json
import sys
from pathlib import Path

import torch

import lab


@torch.no_grad()
def spread(model, x) -> str:
    model.eval()
    f = model.backbone(x)
    s, t = model.head(f)
    sd = f.std(0)
    dead = float((sd < 1e-3 * sd.max()).float().mean())
    rel = float(sd.mean() / f.abs().mean().clamp_min(1e-12))
    return (f"dead dims {100 * dead:.0f} %, feature spread / size {rel:.3f}, logit spread across clips: spatial "
            f"{float(s.std(0).mean()):.3f}, temporal {float(t.std(0).mean()):.3f}")


def main() -> None:
    torch.set_num_threads(1)
    mem = lab.MemStore(sys.argv[1])
    for run in map(Path, sys.argv[2:]):
        spec = lab.PretrainSpec(**json.loads((run / "result.json").read_text())["pretrain"]["spec"])
        ls = lab.LabelSpace.preset(spec.preset)
        ds = lab.pretext_clips(mem, spec, ls, "test", seed=999)
        x = lab.batch_input(lab.collate(ds[i] for i in range(min(100, len(ds)))), spec.size)
        init = lab.build_v3s(spec, ls)
        trained = lab.build_v3s(spec, ls)
        trained.load_state_dict(torch.load(run / "model.pt"))
        print(f"{run.name} at init:    {spread(init, x)}")
        print(f"{run.name} after training: {spread(trained, x)}", flush=True)


if __name__ == "__main__":
    main()

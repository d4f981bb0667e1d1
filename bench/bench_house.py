"""The house in figures: lines per stage, the longest functions, how many project files one pretraining step
crosses, and the start-up time of `v3s-eval --help` against `python -c "import torch"` in the same run.

    python bench/bench_house.py [--repo DIR]     # DIR: a checkout with its .venv (default: this one)

"Files one step crosses": the project files whose code runs during one training step in the main process (the
step function, the warp, the model, the loss; the data loader's workers are not traced), counted with
sys.setprofile on a real step of a width-0.125 R(2+1)D on random uint8 clips.
"""
from __future__ import annotations

import argparse
import ast
import statistics
import subprocess
import time
from pathlib import Path

STAGES = ("preprocess", "train", "evaluate", "shared", "data_manifest", "pipeline")

# Runs inside the checkout's own interpreter: one real training step of whatever API that checkout has.
TRACE = r'''
import sys, torch
from pathlib import Path
repo = Path(sys.argv[1]).resolve()
torch.manual_seed(0)
try:   # the restructured house: items carry their homographies, one network_input
    from v3s.shared.clips import ClipItem
    from v3s.shared.spatial import sample_spatial_params
    from v3s.shared.tasks import PretextTask
    from v3s.train.loop import StepContext, train_one_epoch
    new = True
except ImportError:
    from v3s.train.pretrain import PretextTask
    from v3s.train.loop import StepContext, train_one_epoch
    new = False
from v3s.shared.checkpoint import build_network
from v3s.shared.config import PretrainConfig
from v3s.shared.labels import LabelSpace
space = LabelSpace()
model = build_network(PretrainConfig(store="s", dataset="d", out="o", width=0.125, label_space=space.to_dict()))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
g = torch.Generator().manual_seed(0)
clips = torch.randint(0, 256, (4, 8, 48, 64, 3), dtype=torch.uint8, generator=g)
s, t = torch.randint(0, space.n_spatial, (4,), generator=g), torch.randint(0, space.n_temporal, (4,), generator=g)
common = dict(device=torch.device("cpu"), amp_dtype=None, clip_grad=0.0, seed=0, rank=0, world_size=1, channels_last=False)
if new:
    ctx = StepContext(**common, clip_size=32)
    batch, task = ClipItem(clips, sample_spatial_params(s, space, g, (48, 64), 32), torch.stack([s, t], 1), torch.arange(4)), PretextTask(space)
else:
    ctx = StepContext(**common)
    batch, task = (clips, s, t, torch.arange(4)), PretextTask(space, 32, torch.device("cpu"), 0)
class Quiet:
    def waited(self, x): pass
    def advance(self, n): pass
    def flush(self, **k): return {}
files = set()
def prof(frame, event, arg):
    f = Path(frame.f_code.co_filename)
    try:
        rel = f.resolve().relative_to(repo)
    except ValueError:
        return
    if not rel.parts[0].startswith("<") and rel.parts[0] not in (".venv", "bench", "tests"):
        files.add(str(rel))
sys.setprofile(prof)
train_one_epoch(model, task, [batch], opt, None, torch.amp.GradScaler("cpu", enabled=False), ctx, step=0, last_step=1,
                progress=Quiet(), log=lambda *a: None, log_every=1, on_step=lambda s: None)
sys.setprofile(None)
print(len(files), " ".join(sorted(files)))
'''


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    args = p.parse_args()
    root = Path(args.repo)
    for stage in STAGES:
        files = list((root / stage).rglob("*.py"))
        if files:
            print(f"{stage}: {sum(len(f.read_text().splitlines()) for f in files)} lines in {len(files)} files")
    funcs = []
    for stage in STAGES:
        for f in (root / stage).rglob("*.py"):
            for n in ast.walk(ast.parse(f.read_text())):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    funcs.append((n.end_lineno - n.lineno + 1, f"{f.relative_to(root)}:{n.name}"))
    print("longest functions:", ", ".join(f"{name} {n}" for n, name in sorted(funcs, reverse=True)[:5]))
    py = str(root / ".venv" / "bin" / "python")
    out = subprocess.run([py, "-c", TRACE, str(root)], capture_output=True, text=True, check=True).stdout.split()
    print(f"files one pretraining step crosses: {out[0]} ({', '.join(out[1:])})")

    def median_time(cmd: list[str]) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    help_s = median_time([str(root / ".venv" / "bin" / "v3s-eval"), "--help"])
    torch_s = median_time([py, "-c", "import torch"])
    print(f"v3s-eval --help: {help_s:.2f} s median of 5; python -c 'import torch': {torch_s:.2f} s "
          f"(help / torch import {help_s / torch_s:.2f})")


if __name__ == "__main__":
    main()

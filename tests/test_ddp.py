"""Two-process DDP pretraining on CPU (gloo) under torchrun: identical weights on both ranks, only rank 0 writes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from v3s.shared.checkpoint import load_checkpoint

# Each rank runs this. Rank 1 records every file it opens for writing under the run directory (it must be none).
RANK_SCRIPT = textwrap.dedent('''
    import builtins, io, os, sys
    import torch
    out, dump, store = sys.argv[1:4]
    rank = int(os.environ["RANK"])
    written = []
    if rank != 0:
        real_open, real_os_open = builtins.open, os.open
        def under_out(path):
            return os.path.abspath(os.fspath(path)).startswith(os.path.abspath(out))
        def spy_open(file, mode="r", *a, **k):
            if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and under_out(file):
                written.append(os.fspath(file))
            return real_open(file, mode, *a, **k)
        def spy_os_open(path, flags, *a, **k):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under_out(path):
                written.append(os.fspath(path))
            return real_os_open(path, flags, *a, **k)
        builtins.open = io.open = spy_open
        os.open = spy_os_open
    from v3s.shared.config import PretrainConfig
    from v3s.train.pretrain import pretrain
    result = pretrain(PretrainConfig(store=store, dataset="ucf101", out=out, width=0.125, clip_len=8, clip_size=32,
                                     val_videos=4, batch_size=4, workers=0, epochs=2, max_steps=4, log_every=1,
                                     device="cpu"))
    torch.save({"model": result.model.state_dict(), "written": written, "step": result.step},
               os.path.join(dump, f"rank{rank}.pt"))
''')


@pytest.fixture(scope="module")
def store(tiny_ucf_store) -> str:
    return tiny_ucf_store


def test_two_process_gloo_run_matches_across_ranks(store, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(out), str(dump), store], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = torch.load(dump / "rank0.pt", weights_only=True), torch.load(dump / "rank1.pt", weights_only=True)
    assert r0["step"] == r1["step"] == 4
    for k, v in r0["model"].items():
        assert torch.equal(v, r1["model"][k]), k
    assert r1["written"] == [], r1["written"]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "curves.png", "last.pt", "metrics.jsonl"]
    ckpt = load_checkpoint(out / "last.pt")
    for k, v in ckpt["model"].items():
        assert torch.equal(v, r0["model"][k]), k
    # Global batch 4 = 2 per rank; 12 training videos = 6 per rank = 3 steps per epoch.
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) and sum('"phase": "val"' in line for line in lines) == 2

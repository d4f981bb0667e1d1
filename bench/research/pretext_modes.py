"""Held-out pretext accuracy of a trained run (run.py's OUT/model.pt) under perturbations of the input.

    OMP_NUM_THREADS=1 .venv/bin/python bench/research/pretext_modes.py STORE RUN_DIR [MODE ...]
        # e.g. DATA/store DATA/runs/r0_diff_s0 plain shuffle noise2 noise4 noise8

Modes: lab.pretext_heldout's (plain, shuffle, noiseN). The run's spec is read from RUN_DIR/result.json.
"""
import json
import sys
from pathlib import Path

import torch

import lab

store, run = sys.argv[1], Path(sys.argv[2])
torch.set_num_threads(1)
spec = lab.PretrainSpec(**json.loads((run / "result.json").read_text())["pretrain"]["spec"])
model = lab.build_v3s(spec, lab.LabelSpace.preset(spec.preset))
model.load_state_dict(torch.load(run / "model.pt"))
mem = lab.MemStore(store)
for mode in sys.argv[3:] or ["plain", "shuffle", "noise4"]:
    s, t = lab.pretext_heldout(model, mem, spec, mode=mode)
    print(f"{mode:8s} spatial {lab.fmt(s)}  temporal {lab.fmt(t)}", flush=True)

"""Every random stream of the project in one table: a draw's seed is `seed_for(run seed, STREAM, ...)`.

Each use of randomness has its own stream, so no two draws share a seed, and a draw depends only on the run's
seed and the indices named here (never on worker count, device or the order in which work is done): a resumed
run, a run with another number of workers and the pretext checks all redraw exactly the same values.

Model initialisation is the one draw from torch's global generator: `torch.manual_seed(run seed)` just before
the network is built.
"""
from __future__ import annotations

import numpy as np

# Per clip, drawn in the dataset item (shared/clips.py): the temporal class and start, the spatial class, the
# crop and the flip. Training items: seed_for(seed, CLIP_DRAWS, epoch, video position).
CLIP_DRAWS = 0xC11
# Validation items: seed_for(seed, VALIDATION_DRAWS, video position), the same at every validation of a run.
VALIDATION_DRAWS = 0x7A2
# Which train videos are held out for validation (model selection, the pretext checks): seed_for(seed, ...).
VALIDATION_SPLIT = 0x7A1
# The labelled subset of a low-label finetuning run (--train-per-class): seed_for(seed, ...).
LABELLED_SUBSET = 0x5B5E7
# DataLoader's base generator (worker seeds for library code that still draws from global RNGs).
LOADER = 0x10AD
# Dropout masks, per optimiser step and rank: seed_for(seed, rank, DROPOUT, step).
DROPOUT = 1
# The pretext checks' frame permutations: seed_for(seed, SHORTCUT_VARIANTS, batch start).
SHORTCUT_VARIANTS = 0x5C
# Which labelled videos the representation monitor scores features on (train/monitor.py).
MONITOR_SUBSET = 0x40A1
# A second random initialisation to compare pretrained features against (the pretext checks).
REFERENCE_INIT = 0x1E1


def seed_for(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, stream, epoch, index, ...), independent across inputs."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def rng_for(*parts: int) -> np.random.Generator:
    """A numpy Generator seeded by `seed_for(*parts)`."""
    return np.random.default_rng(seed_for(*parts))

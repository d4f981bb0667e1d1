"""Does the pretext read what it should? Pretext accuracy on held-out videos with the clip intact, with its frames
shuffled in time, and with one frame repeated; and how far the pretrained features are from a random init's.

A temporal head that reads motion falls to chance when the frames are shuffled or frozen; a spatial head that
reads proportions keeps its accuracy on shuffled frames (shuffling changes no frame). These checks come before a
finetuning gain can be judged (docs/demo.md).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from v3s.shared.atomic import write_json
from v3s.shared.checkpoint import load_model
from v3s.shared.clips import pretext_datasets
from v3s.shared.labels import LabelSpace
from v3s.shared.models import build_backbone
from v3s.shared.seeds import REFERENCE_INIT, SHORTCUT_VARIANTS, rng_for, seed_for
from v3s.shared.spatial import network_input
from v3s.shared.store import Store

VARIANTS = ("intact", "shuffled", "frozen")


def _variant(clips: torch.Tensor, name: str, rng: np.random.Generator) -> torch.Tensor:
    """clips: uint8 (B, T, H, W, 3). shuffled: a random permutation of each clip's frames; frozen: its first frame
    T times."""
    if name == "shuffled":
        return torch.stack([c[torch.from_numpy(rng.permutation(c.shape[0]))] for c in clips])
    if name == "frozen":
        return clips[:, :1].expand_as(clips).clone()
    return clips


@torch.no_grad()
def pretext_shortcut_checks(ckpt_path: str | Path, store_path: str | Path, cache: str | Path | None = None,
                            batch_size: int = 16) -> dict[str, Any]:
    """Accuracy of both pretext heads on the run's validation items for each clip variant, plus feature distance.

    Args:
        ckpt_path: a v3s-pretrain checkpoint.
        store_path: the store it was trained on (its validation items are redrawn exactly as pretraining drew them:
            the same videos, classes, frames and crops).
        cache: JSON file holding the result, keyed by the checkpoint's step (a rerun reads it).
    Returns:
        dict with spatial_/temporal_{intact,shuffled,frozen} accuracies (0..1), the class lists, the number of
        backbone tensors and the mean cosine similarity of pooled features to a random init's on the same clips.
    """
    loaded = load_model(ckpt_path, kind="v3s-pretrain")
    config, step = loaded.config, loaded.step
    if cache is not None and Path(cache).is_file():
        cached = json.loads(Path(cache).read_text())
        if cached.get("step") == step and cached.get("ckpt") == str(ckpt_path):
            return cached
    model = loaded.model
    space = LabelSpace.from_dict(config.label_space)
    _, val = pretext_datasets(Store(store_path), config, space)
    torch.manual_seed(seed_for(config.seed, REFERENCE_INIT))
    random_backbone = build_backbone(config.backbone, config.width, input_mode=config.input_mode).eval()

    correct = {f"{head}_{v}": 0 for head in ("spatial", "temporal") for v in VARIANTS}
    cosines: list[float] = []
    for start in range(0, len(val), batch_size):
        batch = default_collate([val[i] for i in range(start, min(start + batch_size, len(val)))])
        spatial, temporal = batch.targets[:, 0], batch.targets[:, 1]
        for variant in VARIANTS:
            clips = _variant(batch.clip, variant, rng_for(config.seed, SHORTCUT_VARIANTS, start))
            # Pretraining's own validation geometry: the same crops as at every validation of the run.
            x = network_input(clips, batch.geometry, config.clip_size)
            feats = model.backbone(x)
            s_logits, t_logits = model.head(feats)
            correct[f"spatial_{variant}"] += int((s_logits.argmax(1) == spatial).sum())
            correct[f"temporal_{variant}"] += int((t_logits.argmax(1) == temporal).sum())
            if variant == "intact":
                cosines += torch.nn.functional.cosine_similarity(feats, random_backbone(x), dim=1).tolist()
    n = len(val)
    result = {
        "ckpt": str(ckpt_path), "step": step, "n_videos": n,
        **{k: v / n for k, v in correct.items()},
        "spatial_classes": [str(c) for c in space.spatial_classes],
        "temporal_classes": [str(c) for c in space.temporal_classes],
        "backbone_tensors": sum(1 for k in model.state_dict() if k.startswith("backbone.")),
        "feature_cosine_vs_random": float(np.mean(cosines)),
    }
    if cache is not None:
        write_json(cache, result)
    return result

"""Does the pretext read what it should? Pretext accuracy on held-out videos with the clip intact, with its frames
shuffled in time, and with one frame repeated; and how far the pretrained features are from a random init's.

A temporal head that reads motion falls to chance when the frames are shuffled or frozen; a spatial head that
reads proportions keeps its accuracy on shuffled frames (shuffling changes no frame). These are the checks issue 8
asks for before a finetuning gain can be judged (docs/demo.md).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v3s.shared.checkpoint import build_model_from_checkpoint, load_checkpoint
from v3s.shared.clips import PretextClips
from v3s.shared.labels import LabelSpace
from v3s.shared.models import build_backbone
from v3s.shared.store import Store
from v3s.train.data import draw_validation, seed_for
from v3s.train.pretrain import PretextTask

VARIANTS = ("intact", "shuffled", "frozen")


def _variant(clip: torch.Tensor, name: str, rng: np.random.Generator) -> torch.Tensor:
    """clip: uint8 (T, H, W, 3). shuffled: a random permutation of the frames; frozen: the first frame T times."""
    if name == "shuffled":
        return clip[torch.from_numpy(rng.permutation(clip.shape[0]))]
    if name == "frozen":
        return clip[:1].expand_as(clip).clone()
    return clip


@torch.no_grad()
def pretext_shortcut_checks(ckpt_path: str | Path, store_path: str | Path, dataset: str, split: str,
                            cache: str | Path | None = None, batch_size: int = 16) -> dict[str, Any]:
    """Accuracy of both pretext heads on the run's validation videos for each clip variant, plus feature distance.

    Args:
        ckpt_path: a v3s-pretrain checkpoint.
        store_path, dataset, split: the store and split it was trained on (its validation videos are re-drawn
            exactly as pretraining drew them).
        cache: JSON file holding the result, keyed by the checkpoint's step (a rerun reads it).
    Returns:
        dict with spatial_/temporal_{intact,shuffled,frozen} accuracies (0..1), the class lists, the number of
        backbone tensors and the mean cosine similarity of pooled features to a random init's on the same clips.
    """
    ckpt = load_checkpoint(ckpt_path, kind="v3s-pretrain")
    if cache is not None and Path(cache).is_file():
        cached = json.loads(Path(cache).read_text())
        if cached.get("step") == ckpt["step"] and cached.get("ckpt") == str(ckpt_path):
            return cached
    model, config = build_model_from_checkpoint(ckpt)
    model.eval()
    space = LabelSpace.from_dict(config.label_space)
    store = Store(store_path)
    clips = PretextClips(store, dataset, split, "train", space, clip_len=config.clip_len, seed=config.seed)
    _, val_pos = draw_validation(len(clips.videos), config.val_videos, config.seed, what="pretraining videos")
    torch.manual_seed(config.seed + 1)
    random_backbone = build_backbone(config.backbone, config.width, input_mode=config.input_mode).eval()

    task = PretextTask(space, config.clip_size, torch.device("cpu"), config.seed, config.canvas, config.crop)
    correct = {f"{head}_{v}": 0 for head in ("spatial", "temporal") for v in VARIANTS}
    cosines: list[float] = []
    for start in range(0, len(val_pos), batch_size):
        items = [clips[p] for p in val_pos[start:start + batch_size]]
        spatial = torch.tensor([it[1] for it in items])
        temporal = torch.tensor([it[2] for it in items])
        index = torch.tensor(val_pos[start:start + batch_size])
        for variant in VARIANTS:
            rng = np.random.default_rng(seed_for(config.seed, 0x5C, start))
            batch = torch.stack([_variant(it[0], variant, rng) for it in items])
            # Pretraining's own validation geometry: the same crops as at every validation of the run.
            x, _ = task.inputs((batch, spatial, temporal, index), None)
            feats = model.backbone(x)
            s_logits, t_logits = model.head(feats)
            correct[f"spatial_{variant}"] += int((s_logits.argmax(1) == spatial).sum())
            correct[f"temporal_{variant}"] += int((t_logits.argmax(1) == temporal).sum())
            if variant == "intact":
                cosines += torch.nn.functional.cosine_similarity(feats, random_backbone(x), dim=1).tolist()
    n = len(val_pos)
    result = {
        "ckpt": str(ckpt_path), "step": ckpt["step"], "n_videos": n,
        **{k: v / n for k, v in correct.items()},
        "spatial_classes": [str(c) for c in space.spatial_classes],
        "temporal_classes": [str(c) for c in space.temporal_classes],
        "backbone_tensors": sum(1 for k in ckpt["model"] if k.startswith("backbone.")),
        "feature_cosine_vs_random": float(np.mean(cosines)),
    }
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        Path(cache).write_text(json.dumps(result, indent=2) + "\n")
    return result

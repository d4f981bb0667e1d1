"""V3S pretraining (paper section 3 and 4.1.2): predict each clip's spatial and temporal transformation.

Loss = CE(spatial head) + CE(temporal head). Workers read the frames of the drawn temporal class (uint8); the
spatial class's warp, the random crop and normalisation run on the device for the whole batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from v3s.shared.checkpoint import build_network
from v3s.shared.clips import PretextClips
from v3s.shared.config import PretrainConfig
from v3s.shared.labels import PAPER_SP, PAPER_SS, PAPER_TP, PAPER_TS, PRESETS, LabelSpace
from v3s.shared.spatial import CANVAS, CROP, normalize, pretext_batch, sample_spatial_params, warp_clips

from .data import EpochTagged, default_workers, draw_validation, open_split, seed_for
from .distributed import DistInfo, run_distributed
from .runner import RunResult, RunSpec, fit

FAMILIES = {"ss": ("ss", PAPER_SS), "sp": ("sp", PAPER_SP), "ts": ("ts", PAPER_TS), "tp": ("tp", PAPER_TP)}
VAL_AUG = 3  # seed stream of the validation crops (train/loop.py uses 1 and 2)


def label_space_from(transforms: str) -> LabelSpace:
    """--transforms: a preset name (paper Tables 1 and 3 rows) or a comma list of families ss,sp,ts,tp."""
    if transforms in PRESETS:
        return LabelSpace.preset(transforms)
    names = [t.strip() for t in transforms.split(",") if t.strip()]
    bad = [t for t in names if t not in FAMILIES]
    if not names or bad:
        raise ValueError(f"--transforms {transforms!r}: {bad or 'empty'} not understood; give a preset "
                         f"({', '.join(PRESETS)}) or a comma list of {', '.join(FAMILIES)}")
    return LabelSpace(**{field: (values if name in names else ()) for name, (field, values) in FAMILIES.items()})


class PretextTask:
    """V3S batches and loss: spatial warp + crop on the device, CE on both heads.

    Args:
        label_space: the classes of both heads. clip_size: output side. device: where batches go.
        seed: run seed (validation crops are drawn from (seed, video index), the same at every validation).
        canvas, crop: the pretext geometry (`v3s.shared.spatial.pretext_batch`; paper: 224, 112).
    """

    metric_names = ("acc_spatial", "acc_temporal")

    def __init__(self, label_space: LabelSpace, clip_size: int, device: torch.device, seed: int,
                 canvas: int = CANVAS, crop: int = CROP):
        self.space, self.size, self.device, self.seed = label_space, clip_size, device, seed
        self.canvas, self.crop = canvas, crop

    def inputs(self, batch, generator: torch.Generator | None):
        """batch: (uint8 clips (B,T,H,W,3), spatial labels (B,), temporal labels (B,), video indices (B,))."""
        clips, spatial, temporal, index = batch
        on_device = clips.to(self.device, non_blocking=True)
        if generator is not None:
            x = pretext_batch(on_device, spatial, self.space, generator, self.size, self.canvas, self.crop)
        else:
            hw = tuple(clips.shape[2:4])
            h = torch.cat([sample_spatial_params(spatial[j:j + 1], self.space,
                                                 torch.Generator().manual_seed(seed_for(self.seed, VAL_AUG, int(index[j]))),
                                                 hw, self.size, self.canvas, self.crop) for j in range(len(index))])
            x = normalize(warp_clips(on_device, h, self.size))
        return x, (spatial.to(self.device, non_blocking=True), temporal.to(self.device, non_blocking=True))

    def loss(self, outputs, targets):
        (s_logits, t_logits), (s, t) = outputs, targets
        loss = F.cross_entropy(s_logits, s) + F.cross_entropy(t_logits, t)
        correct = torch.stack([(s_logits.argmax(1) == s).sum(), (t_logits.argmax(1) == t).sum()])
        return loss, correct

    def score(self, metrics: dict[str, float]) -> float:
        """Best-checkpoint criterion: mean accuracy over the heads that have more than one class."""
        accs = [metrics[name] for name, n in zip(self.metric_names, (self.space.n_spatial, self.space.n_temporal)) if n > 1]
        return sum(accs) / len(accs)


def pretrain(config: PretrainConfig) -> RunResult:
    """Run (or resume) V3S pretraining; under torchrun every rank calls this. See docs/training.md."""
    return run_distributed(_pretrain, config)


def _pretrain(config: PretrainConfig, info: DistInfo) -> RunResult:
    store, _ = open_split(config.store, config.dataset, config.split)
    space = label_space_from(config.transforms)
    config = config.replace(label_space=space.to_dict(),
                            workers=default_workers() if config.workers is None else config.workers)

    def clips() -> PretextClips:
        return PretextClips(store, config.dataset, config.split, "train", space, clip_len=config.clip_len, seed=config.seed)

    train, val = clips(), clips()  # two instances: validation stays at epoch 0 while training moves on
    short = f" ({len(train.dropped)} more are too short for any temporal class)" if train.dropped else ""
    train_pos, val_pos = draw_validation(len(train.videos), config.val_videos, config.seed,
                                         what=f"the train list of {config.dataset!r} split {config.split}{short}")
    torch.manual_seed(config.seed)
    model = build_network(config)
    task = PretextTask(space, config.clip_size, info.device, config.seed, config.canvas, config.crop)
    spec = RunSpec(kind="v3s-pretrain", model=model, param_groups=[{"params": list(model.parameters())}], task=task,
                   train_set=EpochTagged(train, train_pos), val_set=EpochTagged(val, val_pos), score=task.score)
    return fit(config, spec, info)

"""Supervised finetuning for action recognition (paper section 4.3): V3S-pretrained or random backbone + new FC.

Training clips: 16 consecutive frames at a random start, a random 112 crop of the 128x171 stored frames and a
horizontal flip with p = 0.5; validation clips: one clip per held-out train video at a start fixed by
(seed, video), centre crop.
"""
from __future__ import annotations

import torch

from v3s.shared.checkpoint import build_network, load_checkpoint
from v3s.shared.clips import TrainClips, draw_validation
from v3s.shared.config import FinetuneConfig, PretrainConfig
from v3s.shared.models import check_clip_shape, load_backbone_weights
from v3s.shared.paths import check_path
from v3s.shared.runtime import default_workers
from v3s.shared.seeds import LABELLED_SUBSET, rng_for
from v3s.shared.store import VideoInfo
from v3s.shared.tasks import ClassificationTask

from .defaults import Log, batch_size, resolve_init, resolve_out, resolve_source, validation_videos
from .distributed import DistInfo, run_distributed
from .runner import RunResult, RunSpec, fit

# The peers' model-selection videos held out of the train list (other datasets: 10%), and the paper's batch.
PAPER_VAL_VIDEOS = {"ucf101": 800, "hmdb51": 400}
PAPER_BATCH = 8


def labelled_subset(videos: list[VideoInfo], positions: list[int], per_class: int, seed: int) -> list[int]:
    """`per_class` positions of each class drawn by seed from `positions` (the labelled subset of a low-label run).

    Raises:
        ValueError: a class has fewer than per_class videos left after the validation draw.
    """
    by_class: dict[int, list[int]] = {}
    for p in positions:
        by_class.setdefault(videos[p].label, []).append(p)
    short = {videos[ps[0]].class_name: len(ps) for ps in by_class.values() if len(ps) < per_class}
    if per_class < 1 or short:
        raise ValueError(f"--train-per-class {per_class}: needs >= 1 and at most the training videos of every class; "
                         f"too few in {short}")
    rng = rng_for(seed, LABELLED_SUBSET)
    return sorted(p for label in sorted(by_class) for p in rng.choice(by_class[label], per_class, replace=False).tolist())


def finetune(config: FinetuneConfig, log: Log | None = None) -> RunResult:
    """Run finetuning, or continue the run its folder holds; under torchrun every rank calls this.

    Args:
        config: the options; None fields take the defaults `v3s.train.defaults` chooses.
        log: receives one line per choice and about continuing (default: stderr, on rank 0).
    See docs/training.md.
    """
    return run_distributed(_finetune, config, log)


def _resolve_backbone(config: FinetuneConfig) -> tuple[FinetuneConfig, dict | None]:
    """Backbone and width from the --init checkpoint (whose weights are returned) or from --scratch's options."""
    if bool(config.init) == config.scratch:
        raise ValueError("give exactly one of --init PRETRAIN_CHECKPOINT and --scratch")
    if config.init_scheme != "he" and not config.scratch:
        raise ValueError(f"--init-scheme {config.init_scheme} applies with --scratch only: with --init the backbone's "
                         f"weights come from the checkpoint {config.init}")
    if config.scratch:
        return config.replace(backbone=config.backbone or "r21d", width=1.0 if config.width is None else config.width,
                              input_mode=config.input_mode or "rgb"), None
    ckpt = load_checkpoint(check_path(config.init, "file", "--init"), kind="v3s-pretrain")
    pre = PretrainConfig.from_dict(ckpt["config"])
    for name in ("backbone", "width", "input_mode"):
        given = getattr(config, name)
        if given is not None and given != getattr(pre, name):
            raise ValueError(f"--{name.replace('_', '-')} {given!r} contradicts the --init checkpoint's {name} "
                             f"{getattr(pre, name)!r}; leave it out with --init")
    return config.replace(backbone=pre.backbone, width=pre.width, input_mode=pre.input_mode), ckpt["model"]


def _finetune(config: FinetuneConfig, info: DistInfo, log: Log) -> RunResult:
    config = resolve_init(config, log)
    config, pretrained = _resolve_backbone(config)
    check_clip_shape(config.backbone, config.clip_len, config.clip_size)
    config, store = resolve_source(config, log)
    config = resolve_out(config, log)
    videos = store.split(config.dataset, config.split, "train")
    h, w = videos[0].height, videos[0].width
    if config.clip_size > min(h, w):
        raise ValueError(f"--clip-size {config.clip_size} is larger than the stored frames ({h}x{w}) of {config.dataset!r}")
    span = (config.clip_len - 1) * config.frame_step + 1
    short = sum(v.num_frames < span for v in videos)
    if short > len(videos) // 2:
        log(f"note: a clip of {config.clip_len} frames every {config.frame_step} spans {span} frames, more than "
            f"{short} of the {len(videos)} train videos have: their clips repeat their last frame")
    classes = store.classes(config.dataset)
    n_val = validation_videos(config.val_videos, len(videos), PAPER_VAL_VIDEOS.get(config.dataset), log)
    config = config.replace(val_videos=n_val, n_classes=len(classes), classes=tuple(classes),
                            workers=default_workers() if config.workers is None else config.workers)
    train_pos, val_pos = draw_validation(len(videos), n_val, config.seed,
                                         what=f"the train list of {config.dataset!r} split {config.split}")
    if config.train_per_class is not None:
        train_pos = labelled_subset(videos, train_pos, config.train_per_class, config.seed)
    config = config.replace(batch_size=batch_size(config.batch_size, PAPER_BATCH, len(train_pos), info.world_size, log))

    torch.manual_seed(config.seed)
    model = build_network(config)
    if pretrained is not None:
        missing, unexpected = load_backbone_weights(model.backbone, pretrained)
        if missing or unexpected:
            raise ValueError(f"--init {config.init}: backbone weights do not match (missing {missing[:5]}, unexpected {unexpected[:5]})")
    groups = [{"params": list(model.backbone.parameters()), "lr": config.lr * config.backbone_lr_mult},
              {"params": list(model.head.parameters()), "lr": config.lr}]

    def view(positions: list[int], augment: bool) -> TrainClips:
        return TrainClips(store, config.dataset, config.split, "train", clip_len=config.clip_len, seed=config.seed,
                          videos=[videos[p] for p in positions], frame_step=config.frame_step,
                          clip_size=config.clip_size, flip=not config.no_flip, augment=augment)

    spec = RunSpec(kind="v3s-finetune", model=model, param_groups=groups, task=ClassificationTask(),
                   train_set=view(train_pos, True), val_set=view(val_pos, False))
    return fit(config, spec, info, log)

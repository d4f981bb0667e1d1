"""The main job's options (a light module: `v3s-eval --help` reads it without loading any stage)."""
from __future__ import annotations

from dataclasses import dataclass

from v3s.shared.config import ConfigBase, option


@dataclass(frozen=True, kw_only=True)
class DemoConfig(ConfigBase):
    """The CPU-sized preset of the whole pipeline (docs/demo.md explains each value).

    Attributes:
        out: output folder (data, store, runs, REPORT.md, PNGs).
        class_set, classes, videos_per_class: the synthetic set (UCF101 layout, 3 splits; split 1 is used):
            "kinds" = classes that differ by the kind of motion, direction drawn per clip (docs/synth.md).
        synth_size: (height, width) the synthetic videos are rendered at.
        aslan_classes, aslan_videos_per_class, aslan_pairs_per_fold: the ASLAN-style set of unseen motion classes.
        store_size: (height, width) of the stored frames: the paper's 128x171 scaled by 0.28, so that the 32 crop
            shows the share of the frame the paper's 112 crop does.
        backbone, width: the network (R(2+1)D as in the paper's ablations, width-reduced for 2 CPU cores).
        input_mode: "diff" feeds differences of consecutive frames (TSN's RGB-difference modality) to both arms:
            at this size an RGB-input network never left chance on the pretext (docs/demo.md).
        clip_len, clip_size: frames per clip and the side of the network's input.
        frame_step: finetuning and evaluation clips take every frame_step-th frame (the paper: 1).
        canvas: the pretext canvas (paper: 224, so a pretext clip shows half the frame; 128: 7/8, as finetuning).
        pretext_noise: training pretext clips get fresh pixel noise of sigma ~ U(0, this) grey levels after the warp
            (0: none, the paper; PretrainConfig.pretext_noise). With canvas 128, the demo's recipe (docs/demo.md).
        transforms: the V3S label space preset (paper Table 3's "V3S" = all four transformations).
        pretrain_steps, pretrain_batch, pretrain_lr: the fixed pretraining budget.
        monitor_measurements: the representation monitor's kNN measurements along pretraining.
        train_per_class: labelled videos per class for finetuning (the low-label regime where pretraining matters).
        finetune_steps, finetune_batch, finetune_lr, backbone_lr_mult: the same budget for both arms.
        seeds: finetuning seeds (each runs V3S init and random init).
        jobs: worker processes for synth and extract.
        workers: DataLoader workers of the training runs (finetuning runs side by side load in-process).
        finetune_jobs: finetuning runs side by side on a CPU machine, one thread each (on a GPU: one at a time).
    """

    out: str = option("demo_out", "Output folder (data, store, runs, REPORT.md, PNGs).", path="out-dir")
    class_set: str = option("kinds", cli=False)
    classes: int = option(10, cli=False)
    videos_per_class: int = option(80, cli=False)
    synth_size: tuple[int, int] = option((72, 96), cli=False)
    aslan_classes: int = option(20, cli=False)
    aslan_videos_per_class: int = option(12, cli=False)
    aslan_pairs_per_fold: int = option(40, cli=False)
    store_size: tuple[int, int] = option((36, 48), cli=False)
    backbone: str = option("r21d", cli=False)
    width: float = option(0.25, cli=False)
    input_mode: str = option("diff", cli=False)
    clip_len: int = option(16, cli=False)
    clip_size: int = option(32, cli=False)
    frame_step: int = option(2, cli=False)
    canvas: int = option(128, cli=False)
    pretext_noise: float = option(6.0, cli=False)
    transforms: str = option("all", cli=False)
    pretrain_steps: int = option(1500, "V3S pretraining steps.", min=1)
    monitor_measurements: int = option(5, cli=False)
    pretrain_batch: int = option(16, cli=False)
    pretrain_lr: float = option(0.05, cli=False)
    pretrain_val_videos: int = option(50, cli=False)
    train_per_class: int = option(10, cli=False)
    finetune_steps: int = option(300, "Finetuning steps of each arm.", min=1)
    finetune_batch: int = option(16, cli=False)
    finetune_lr: float = option(0.05, cli=False)
    backbone_lr_mult: float = option(1.0, "The V3S arm's backbone learning rate x this (random init keeps x1); 0.1 "
                                          "with --finetune-steps 1200 is docs/demo.md's longer-finetuning check "
                                          "(use a new --out).", min=0)
    finetune_val_videos: int = option(30, cli=False)
    seeds: tuple[int, ...] = option((0, 1), "Comma list of finetuning seeds.", parse="ints")
    jobs: int = option(2, cli=False)
    workers: int = option(1, cli=False)
    finetune_jobs: int = option(2, cli=False)

    _tuples = ("seeds", "synth_size", "store_size")

    def __post_init__(self) -> None:
        if self.backbone_lr_mult < 0:
            raise ValueError(f"--backbone-lr-mult {self.backbone_lr_mult}: must be >= 0")
        super().__post_init__()
        if not self.seeds:
            raise ValueError("--seeds names no seed; give a comma list of integers, e.g. 0,1")

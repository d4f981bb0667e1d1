"""The options of every `v3s-eval` command: one frozen dataclass per command, built from shared option groups.

A command's options are generated from its class (v3s.shared.cli), so an option is written once, here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from v3s.shared.config import ConfigBase, StoreSplit, option
from v3s.shared.choices import INIT_SCHEMES, INPUT_MODES

from v3s.shared.metrics.aslan import NEGATIVE_MODES, NORM_MODES
from v3s.shared.metrics.knn import DEFAULT_TEMPERATURE, KNN_KS
from v3s.shared.metrics.linear import DEFAULT_CS, DEFAULT_FOLDS, DEFAULT_MAX_ITER
from v3s.shared.metrics.recognition import AGGREGATION_MODES
from v3s.shared.metrics.retrieval import PEER_KS

LAYERS = ("conv5", "pool")
GRADCAM_TARGETS = ("auto", "predicted", "spatial", "temporal")


@dataclass(frozen=True, kw_only=True)
class ModelSource(ConfigBase):
    """A v3s checkpoint, a peer's released backbone weights, or a random initialisation (the tables' baseline)."""

    ckpt: Optional[str] = option(None, "A pretrain or finetune checkpoint, or a peer's released R3D/R(2+1)D/C3D "
                                       "state dict (VCOP, PRP, VCP, PacePred; say what it holds with --backbone and "
                                       "--width) [default: the latest pretraining run's best.pt in the workspace].",
                                 path="file")
    random: bool = option(False, "A randomly initialised backbone (the baseline row) instead of --ckpt.")
    backbone: Optional[str] = option(None, "With --random or a peer's --ckpt: backbone name (r21d, r3d, r3d18, c3d, "
                                           "s3dg; a peer's: c3d, r21d, r3d, r3d18).")
    width: Optional[float] = option(None, "With --random or a peer's --ckpt: channel width multiplier [default with "
                                          "--random: 1.0; required with a peer's --ckpt: 1.0 for their networks].", above=0)
    seed: int = option(0, "With --random: initialisation seed.")
    input_mode: str = option("rgb", "With --random or a peer's --ckpt: network input (frames, or differences of "
                                    "consecutive frames).", choices=INPUT_MODES)
    init_scheme: str = option("he", "With --random: he (He normal convolutions, the project's initialisation) or "
                                    "pytorch (torch's module defaults, as the VCOP-family random baselines).",
                              choices=INIT_SCHEMES)


@dataclass(frozen=True, kw_only=True)
class ClipGeometry(ConfigBase):
    """How clips are cut and cropped; None takes the checkpoint's (a random initialisation: 16, 112 and 1)."""

    clip_len: Optional[int] = option(None, "Frames per clip [default: the checkpoint's].", min=1)
    clip_size: Optional[int] = option(None, "Centre crop side [default: the checkpoint's].", min=1)
    frame_step: Optional[int] = option(None, "Every k-th frame in a clip [default: the checkpoint's, 1].", min=1)


@dataclass(frozen=True, kw_only=True)
class VideoFeatures(ConfigBase):
    """One feature per video for kNN, linear evaluation and embeddings: a tap averaged over linspace clips."""

    layer: str = option("pool", "The pooled vector (the usual frozen-feature probe), or conv5 after "
                                "MaxPool3d(1,2,2), flattened (retrieval's).", choices=LAYERS)
    clips: int = option(10, "Clips per video (linspace centres).", min=1)


@dataclass(frozen=True, kw_only=True)
class Extraction(ConfigBase):
    """How features are extracted, cached and reported (never what they are)."""

    batch_size: Optional[int] = option(None, "Clips per forward pass [default: 64 on a GPU, 16 on the CPU].", min=1)
    workers: Optional[int] = option(None, "DataLoader workers [default: the CPU cores less one, at most 8].", min=0)
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N.")
    out: Optional[str] = option(None, "Results folder [default: CKPT_DIR/eval/<task>-...].", path="out-dir")
    cache_dir: Optional[str] = option(None, "Feature cache folder [default: CKPT_DIR/features].", path="out-dir")
    no_cache: bool = option(False, "Extract again and do not write the cache.")
    quiet: bool = option(False, "No progress bar.")
    json: bool = option(False, "Print the results JSON instead of a table.")



@dataclass(frozen=True, kw_only=True)
class RecognitionConfig(StoreSplit, Extraction):
    """`v3s-eval recognition`: a finetuned checkpoint on the test list of a split."""

    ckpt: Optional[str] = option(None, "A v3s-finetune checkpoint [default: the latest finetuning run's best.pt in "
                                       "the workspace].", path="file")
    clips: int = option(10, "Clips per video (linspace centres).", min=1)
    average: str = option("prob", "Average softmax probabilities (the paper) or logits (VCOP) over a video's clips.",
                          choices=AGGREGATION_MODES)


@dataclass(frozen=True, kw_only=True)
class RetrievalConfig(ModelSource, StoreSplit, ClipGeometry, Extraction):
    """`v3s-eval retrieval`: test videos query train videos (VCOP / PRP protocol)."""

    layer: str = option("conv5", "conv5 after MaxPool3d(1,2,2), flattened (the peers'), or the pooled vector.",
                        choices=LAYERS)
    ks: tuple = option(PEER_KS, "k values of top-k.", parse="ints")
    clips: int = option(10, "Clips per video (linspace centres).", min=1)
    examples: int = option(8, "Example queries drawn in examples.png.", min=0)
    neighbours: int = option(5, "Nearest train videos drawn beside each example query.", min=1)


@dataclass(frozen=True, kw_only=True)
class KnnConfig(ModelSource, StoreSplit, ClipGeometry, VideoFeatures, Extraction):
    """`v3s-eval knn`: weighted k-nearest-neighbour classification of test videos by train videos (DINO)."""

    ks: tuple = option(KNN_KS, "Neighbours that vote (each k is reported; the train list picks the headline k).",
                       parse="ints")
    temperature: float = option(DEFAULT_TEMPERATURE, "T of the vote weights exp(cosine / T) (DINO: 0.07).", above=0)


@dataclass(frozen=True, kw_only=True)
class LinearConfig(ModelSource, StoreSplit, ClipGeometry, VideoFeatures, Extraction):
    """`v3s-eval linear`: logistic regression on standardised frozen features, C by group-aware cross-validation."""

    cs: tuple = option(DEFAULT_CS, "Inverse L2 strengths C searched by cross-validation on the train list.",
                       parse="floats")
    folds: int = option(DEFAULT_FOLDS, "Cross-validation folds (videos of one gXX group stay in one fold).", min=2,
                       why="cross-validation needs >= 2 folds")
    max_iter: int = option(DEFAULT_MAX_ITER, "lbfgs iterations per fit (fits that stop early are reported).", min=1)


@dataclass(frozen=True, kw_only=True)
class EmbedConfig(ModelSource, ClipGeometry, VideoFeatures, Extraction):
    """`v3s-eval embed`: one feature per video of a store's dataset or of a folder of videos, to an .npz."""

    out: str = option(help="The .npz to write: ids, labels (-1 where unknown), features (N, D), meta.", path="any")
    store: Optional[str] = option(None, "Frame store [default: the workspace's, unless --root is given].",
                                  path="dir")
    dataset: Optional[str] = option(None, "Dataset in the store [default: the checkpoint's, else the only one].")
    root: Optional[str] = option(None, "Instead of --store: a folder of videos (searched recursively), decoded as "
                                       "v3s-prep extract decodes them.", path="dir")
    size: Optional[tuple] = option(None, "With --root: HEIGHTxWIDTH to decode to [default: the checkpoint's store "
                                         "size, else 128x171].", parse="size")
    force: bool = option(False, "Overwrite --out if it exists.")


@dataclass(frozen=True, kw_only=True)
class AslanConfig(ModelSource, ClipGeometry, Extraction):
    """`v3s-eval aslan`: same/not-same action pairs, 10-fold View-2 protocol."""

    pairs: Optional[str] = option(None, "View2.mat or pairs.csv [default: the pairs file recorded when the ASLAN "
                                        "folder was extracted].", path="file")
    features: Optional[str] = option(None, "Instead of --ckpt: an .npz of per-video features (one array per layer "
                                           "+ 'ids').", path="file")
    store: Optional[str] = option(None, "With --ckpt or --random: frame store holding the ASLAN videos [default: "
                                        "the workspace's].", path="dir")
    dataset: str = option("aslan", "Dataset name in the store.")
    layers: Optional[tuple] = option(None, "Comma-separated taps [default: pool3,pool4,pool5; with --features: "
                                           "every array].", parse="names")
    C: float = option(1.0, "Linear SVM C (same for every fold).", flag="--C", above=0)
    stride: Optional[int] = option(None, "Frames between clip starts [default: clip length / 2].", min=1)
    negative: str = option("clip", "How the measures that need non-negative entries treat negative ones.",
                           choices=NEGATIVE_MODES)
    last_four_norm: str = option("l2", "Normalisation of the last four measures (docs/protocols.md).",
                                 choices=NORM_MODES)


@dataclass(frozen=True, kw_only=True)
class OneVideo(ConfigBase):
    """One video looked at closely: a file, or an entry of a frame store."""

    video: Optional[str] = option(None, "A video file (decoded with ffmpeg).", path="file")
    store: Optional[str] = option(None, "Or: a frame store ...", path="dir")
    dataset: Optional[str] = option(None, "... its dataset ...")
    key: Optional[str] = option(None, "... and a video's rel_path (or store key) ...")
    index: Optional[int] = option(None, "... or its position among the dataset's ok videos.", min=0)
    size: Optional[tuple] = option(None, "With --video: HEIGHTxWIDTH to resize to [default: the checkpoint's store "
                                         "size, else 128x171].", parse="size")


@dataclass(frozen=True, kw_only=True)
class GradcamConfig(OneVideo):
    """`v3s-eval gradcam`: Grad-CAM of one clip on the last conv stage."""

    ckpt: str = option(help="A finetune or pretrain checkpoint.", path="file")
    target: str = option("auto", "auto, predicted, a class id (finetune), spatial or temporal (pretrain: that head's "
                                 "prediction).")
    start: Optional[int] = option(None, "First frame of the clip [default: the centred clip].", min=0)
    fps: float = option(8.0, "GIF frame rate.", above=0)
    device: str = option("auto", "auto, cpu, cuda, cuda:N.")
    out: Optional[str] = option(None, "Results folder [default: CKPT_DIR/eval/gradcam-<video>].", path="out-dir")
    json: bool = option(False, "Print the results JSON instead of a summary.")


@dataclass(frozen=True, kw_only=True)
class SpeedinessConfig(OneVideo, Extraction):
    """`v3s-eval speediness`: the pretrained temporal head's reading of playback speed along one video (Fig. 4)."""

    ckpt: Optional[str] = option(None, "A pretrain checkpoint (its temporal head) [default: the latest pretraining "
                                       "run's best.pt in the workspace].", path="file")
    stride: Optional[int] = option(None, "Frames between clip starts [default: clip length / 2].", min=1)
    thumbs: int = option(8, "Frames drawn in the strip under the curve.", min=1)


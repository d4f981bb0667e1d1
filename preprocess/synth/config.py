"""The synthetic set's options and constants: class sets, speeds, sizes (a light module: no numpy, cv2 or ffmpeg)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from v3s.shared.config import ConfigBase, option

LAYOUTS = ("ucf101", "hmdb51", "aslan")
CODECS = {"xvid": ("libxvid", ".avi"), "h264": ("libx264", ".mp4")}
FPS = 25

# Motion classes of the default set (ucf101 / hmdb51 layouts); `--classes N` takes the first N.
DEFAULT_CLASSES = (
    "TranslateLeft", "TranslateRight", "TranslateUp", "TranslateDown",
    "CircleClockwise", "CircleCounterclockwise", "OscillateHorizontal", "ZigZagRight",
    "Approach", "Recede", "OscillateVertical", "TranslateDownRight",
)
# The "kinds" set: classes differ in the KIND of motion (path, speed profile, growth), never in its direction:
# each clip draws its direction (and turning sense) at random, as a real action's class does not depend on whether
# it is filmed from the left or the right, so horizontal flips keep every label. Accelerate / Decelerate /
# StopAndGo move along a straight line with a periodic speed profile whose mean is the kind's speed (KIND_SPEED).
KIND_CLASSES = (
    "Glide", "Circle", "Oscillate", "ZigZag", "Loop", "Approach", "Recede", "Accelerate", "Decelerate", "StopAndGo",
)
CLASS_SETS = {"directions": DEFAULT_CLASSES, "kinds": KIND_CLASSES}
# Each kind has its own natural (mean) speed, in multiples of SPEED, as real actions do (running is faster than
# walking): a clip's apparent speed is then the class's speed times the playback speed, so V3S's speed pretext can
# only be solved by recognising the kind of motion (docs/synth.md, "Speed policy").
# (Approach and Recede, shared with the directions set, keep the common speed there and here.)
KIND_SPEED = {"Glide": 1.5, "Circle": 0.7, "Oscillate": 1.2, "ZigZag": 0.9, "Loop": 0.6, "Approach": 1.0,
              "Recede": 1.0, "Accelerate": 1.3, "Decelerate": 0.8, "StopAndGo": 1.1}
# Motion classes of the ASLAN-style set: none of them occurs in DEFAULT_CLASSES (never-seen actions).
ASLAN_CLASSES = (
    "TranslateUpRight", "TranslateUpLeft", "TranslateDownLeft", "OscillateDiagonal", "OscillateAntiDiagonal",
    "ZigZagLeft", "ZigZagUp", "ZigZagDown", "SquarePathClockwise", "SquarePathCounterclockwise",
    "TrianglePathClockwise", "TrianglePathCounterclockwise", "FigureEight", "FigureEightVertical",
    "WaveRight", "WaveLeft", "WaveUp", "WaveDown", "LoopRight", "LoopLeft", "Pulse",
)

# Speed policy (see docs/synth.md): one narrow range for every class, in frame heights per frame.
SPEED = 0.022
PACE_PERIOD = (24, 40)  # frames per cycle of a speed profile (Accelerate, Decelerate, StopAndGo)
GROWTH = 0.008          # |d log(size) / dt| of Approach / Recede / Pulse, per frame
SPREAD = (0.9, 1.1)     # multiplicative range of both rates
OBJECT_SIZE = (0.15, 0.30)   # object bounding diameter, in frame heights
LENGTH = (60, 200)      # frames per video, inclusive
CLUTTER = ("full", "clean")   # SynthConfig.clutter: the default scene, or a plain background with no distractors/noise
SHAPES = ("disc", "square", "triangle", "pentagon", "hexagon", "star", "house", "figure")
TEXTURES = ("stripes", "checker", "dots", "rings")


@dataclass(frozen=True, kw_only=True)
class SynthConfig(ConfigBase):
    """What `v3s-prep synth` generates (its options, one field each; the folder it writes is saved with them).

    Args:
        layout: "ucf101", "hmdb51" or "aslan".
        classes: number of motion classes (taken in order from the class set, or ASLAN_CLASSES for aslan);
            None: 10 (20 for aslan).
        videos_per_class: clips per class; None: 40 (12 for aslan).
        size: (height, width) of the encoded frames; both even (XviD and H.264 in yuv420p need it).
        seed: the dataset seed; the same seed gives the same decoded frames.
        codec: "xvid" (.avi, like UCF101) or "h264" (.mp4).
        pairs_per_fold: ASLAN only: pairs per fold, half same, half not-same.
        class_set: ucf101 / hmdb51 layouts: "directions" (DEFAULT_CLASSES: classes that differ by direction,
            e.g. TranslateLeft vs TranslateRight) or "kinds" (KIND_CLASSES: the kind of motion, direction random).
        clutter: "full" (textured background with dim static shapes, 0-2 distractors, pixel noise sigma 2-5) or
            "clean" (a plain background of one colour, no distractors, no pixel noise): a control for research on
            what the clutter costs. Both draw the same object, colours, camera jitter and path; the speed profile of
            Accelerate, Decelerate and StopAndGo (drawn after the clutter) is drawn afresh in "clean".
    """

    layout: str = option("ucf101", "Folder and split-file layout to write (aslan: never-seen motion classes and "
                                   "pairs.csv).", choices=LAYOUTS)
    class_set: str = option("directions", "ucf101/hmdb51: classes that differ by direction, or by kind of motion "
                                          "(direction random).", choices=tuple(CLASS_SETS))
    classes: Optional[int] = option(None, "Motion classes [default: 10; 20 for aslan, which takes 20 or "
                                             "21].", min=2)
    videos_per_class: Optional[int] = option(None, "Clips per class [default: 40; 12 for aslan].", min=3)
    size: tuple = option((128, 172), "Frame HEIGHTxWIDTH of the encoded videos; both even (yuv420p).", parse="size")
    seed: int = option(0, "Dataset seed: same seed, same frames.")
    codec: str = option("xvid", "xvid: .avi like UCF101; h264: .mp4.", choices=tuple(CODECS))
    pairs_per_fold: int = option(40, "aslan only: pairs per fold, half same, half not-same.", min=2)
    clutter: str = option("full", "full: textured background, distractors, pixel noise; clean: a plain background and "
                                  "none of them (a research control).", choices=CLUTTER)

    def __post_init__(self) -> None:
        super().__post_init__()
        aslan = self.layout == "aslan"
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        if self.classes is None:
            object.__setattr__(self, "classes", 20 if aslan else 10)
        if self.videos_per_class is None:
            object.__setattr__(self, "videos_per_class", 12 if aslan else 40)
        if self.clutter not in CLUTTER:
            raise ValueError(f"clutter {self.clutter!r} is not one of {CLUTTER}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout {self.layout!r} is not one of {LAYOUTS}")
        if self.class_set not in CLASS_SETS:
            raise ValueError(f"class_set {self.class_set!r} is not one of {tuple(CLASS_SETS)}")
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r} is not one of {tuple(CODECS)}")
        pool = class_pool(self.layout, self.class_set)
        lo = 20 if self.layout == "aslan" else 2
        if not lo <= self.classes <= len(pool):
            raise ValueError(f"classes={self.classes} must be in [{lo}, {len(pool)}] for layout {self.layout!r}"
                             + (" (10 folds of disjoint classes need 2 classes per fold for not-same pairs)"
                                if self.layout == "aslan" else ""))
        if self.videos_per_class < 3:
            raise ValueError(f"videos_per_class={self.videos_per_class} must be >= 3 (3 splits need 3 groups)")
        h, w = self.size
        if h < 32 or w < 32 or h % 2 or w % 2:
            raise ValueError(f"size {h}x{w} must be at least 32x32 with an even height and width "
                             "(XviD and H.264 in yuv420p reject odd sizes)")
        if self.pairs_per_fold < 2 or self.pairs_per_fold % 2:
            raise ValueError(f"pairs_per_fold={self.pairs_per_fold} must be an even number >= 2")


def class_pool(layout: str, class_set: str = "directions") -> tuple[str, ...]:
    """The motion classes a layout draws from (ASLAN's are disjoint from the directions set's)."""
    return ASLAN_CLASSES if layout == "aslan" else CLASS_SETS[class_set]

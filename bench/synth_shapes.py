"""Research variant of the default set for issue 8: ten classes that differ by trajectory SHAPE rather than only by
direction (module constant patched in-process; the generator and its config are otherwise the default's).

    python bench/synth_shapes.py OUT
    # then run the first demo's settings (docs/demo.md, "Before") with OUT = DEMO/data/synth
"""
import sys

import v3s.preprocess.synth as S

S.DEFAULT_CLASSES = S.CLASS_SETS["directions"] = (
    "TranslateRight", "ZigZagRight", "WaveRight", "LoopRight", "CircleClockwise", "SquarePathClockwise",
    "TrianglePathClockwise", "FigureEight", "OscillateHorizontal", "Pulse")
print(S.generate(S.SynthConfig(), sys.argv[1], jobs=2))

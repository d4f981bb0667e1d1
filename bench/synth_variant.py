"""A variant of the synthetic set for the demo research: bigger, faster objects (module constants patched in-process).

    python bench/synth_variant.py OUT SPEED SIZE_MIN SIZE_MAX HEIGHT WIDTH     # e.g. /tmp/dr/synthB 0.045 0.30 0.45 64 86
"""
import sys

import v3s.preprocess.synth as S

S.SPEED = float(sys.argv[2])
S.OBJECT_SIZE = (float(sys.argv[3]), float(sys.argv[4]))
print(S.generate(S.SynthConfig(size=(int(sys.argv[5]), int(sys.argv[6]))), sys.argv[1], jobs=1))

"""The values that options naming a mode accept (a module without torch, so that every CLI's --help loads fast)."""

# What the first layer sees: the (normalised) frames, as in the paper, or the differences of consecutive frames
# (TSN's "RGB difference" modality: T-1 difference frames, no static appearance). See docs/demo.md.
INPUT_MODES = ("rgb", "diff")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
LR_SCHEDULES = ("cosine", "plateau", "constant")
SYNC_BN = ("auto", "on", "off")
# How a backbone built from scratch is initialised: He normal for convolutions (the project's default), or what
# torch's modules draw by themselves (the VCOP-family random baselines). See shared/models/base.py init_weights.
INIT_SCHEMES = ("he", "pytorch")

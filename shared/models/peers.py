"""The peers' state-dict naming: explicit key maps between their released R3D / R(2+1)D / C3D weights and ours.

VCOP (Xu et al., CVPR 2019), PRP (Yao et al., CVPR 2020), VCP (Luo et al., AAAI 2020) and PacePred (Wang et al.,
ECCV 2020) train the same three networks as this project's `r3d`, `r21d` and `c3d` (same layers, strides,
paddings, biases and BN settings) but name their tensors differently, and the R3D/R(2+1)D blocks register the
shortcut before conv1, so a copy by position would put tensors in the wrong layers. Each naming is written here as
one pure function from our key to the peer's key (`peer_key`); a file's keys are looked up in the table that
function generates over every key of the network being loaded (`key_table`), so a key matches exactly or not at
all: there is no fuzzy matching. docs/backbones.md lists which peer files each naming was read from.

Namings (`KEY_FORMATS`):
  vcop     VCOP's models/r3d.py, r21d.py, c3d.py; the same names in PRP's r3d.py and r21d.py and in PacePred's
           r3d.py, r21d.py, c3d.py. R3D: conv1.temporal_spatial_conv.weight, bn1.*,
           convN.block1.{conv1,conv2,downsampleconv}.temporal_spatial_conv.weight, convN.block1.{bn1,bn2,
           downsamplebn}.* (further blocks: convN.blocks.J.*); R(2+1)D: each conv is spatial_conv.weight, bn.*,
           temporal_conv.weight; C3D: conv1, bn1, conv2, bn2, conv3a, bn3a, conv3b, bn3b, ... conv5b, bn5b.
  prp-c3d  PRP's C3D: conv1, conv2, conv3_1, conv3_2, ... conv5_2, each a conv3d block whose conv is
           .conv3d.0 and whose batch norm is .conv3d.1.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

# Backbones each naming covers (r3d18 is VCOP's R3DNet with layer sizes (2,2,2,2); no peer released it).
KEY_FORMATS: dict[str, tuple[str, ...]] = {"vcop": ("c3d", "r3d", "r3d18", "r21d"), "prp-c3d": ("c3d",)}
PEER_BACKBONES = tuple(sorted({b for names in KEY_FORMATS.values() for b in names}))
# Wrappers around a backbone in the peers' files: DataParallel's "module.", and the pretext model's attribute
# "base_network." (VCOPN, VCPN, PRP's SSCN_OneClip), stripped in this order.
WRAPPER_PREFIXES = ("module.", "base_network.")
# Top-level modules of the peers' heads, which are not part of the backbone and are dropped: linear (R3DNet,
# R2Plus1DNet and C3D with_classifier; PacePred's models), fc7/fc8 (VCOP's VCOPN), fc (VCP's VCPN, VCOPN_RNN),
# lstm/gru (VCOPN_RNN), up1/up2/up3/up4_1/outc/conv6_cls/conv6_rec/fc8/fc8_cyc (PRP's SSCN_OneClip),
# conv6 (an earlier PRP C3D that held its pretext's conv6).
HEAD_MODULES = frozenset({"linear", "fc", "fc7", "fc8", "fc8_cyc", "lstm", "gru", "up1", "up2", "up3", "up4_1",
                          "outc", "conv6", "conv6_cls", "conv6_rec"})

_STEM = re.compile(r"stages\.conv1\.([01])\.(.+)")
_BLOCK = re.compile(r"stages\.conv([2-5])\.(\d+)\.(conv1|bn1|conv2|bn2|downsample\.0|downsample\.1)\.(.+)")
_C3D = re.compile(r"stages\.(conv[1-5])\.(\d)\.(.+)")
_BLOCK_PART = {"conv1": "conv1", "bn1": "bn1", "conv2": "conv2", "bn2": "bn2", "downsample.0": "downsampleconv",
               "downsample.1": "downsamplebn"}
# Our C3D layer (stage, position in the stage's Sequential) -> the peer's module.
_C3D_VCOP = {("conv1", 0): "conv1", ("conv1", 1): "bn1", ("conv2", 1): "conv2", ("conv2", 2): "bn2",
             **{(f"conv{s}", i): f"{kind}{s}{ab}" for s in (3, 4, 5)
                for i, kind, ab in ((1, "conv", "a"), (2, "bn", "a"), (4, "conv", "b"), (5, "bn", "b"))}}
_C3D_PRP = {("conv1", 0): "conv1.conv3d.0", ("conv1", 1): "conv1.conv3d.1", ("conv2", 1): "conv2.conv3d.0",
            ("conv2", 2): "conv2.conv3d.1",
            **{(f"conv{s}", i): f"conv{s}_{n}.conv3d.{j}" for s in (3, 4, 5)
               for i, n, j in ((1, 1, 0), (2, 1, 1), (4, 2, 0), (5, 2, 1))}}


def _conv_leaf(rest: str, factored: bool) -> str | None:
    """The peer's name inside one SpatioTemporalConv for our conv's key remainder."""
    if not factored:  # R3D: our Conv3DSimple is the conv itself
        return "temporal_spatial_conv.weight" if rest == "weight" else None
    m = re.fullmatch(r"([013])\.(.+)", rest)  # R(2+1)D: our Conv2Plus1D is Sequential(conv, bn, relu, conv)
    if m is None:
        return None
    part = {"0": "spatial_conv", "1": "bn", "3": "temporal_conv"}[m.group(1)]
    return f"{part}.{m.group(2)}"


def _resnet_key(key: str, factored: bool) -> str | None:
    m = _STEM.fullmatch(key)
    if m:
        if m.group(1) == "1":
            return f"bn1.{m.group(2)}"
        leaf = _conv_leaf(m.group(2), factored)
        return None if leaf is None else f"conv1.{leaf}"
    m = _BLOCK.fullmatch(key)
    if m is None:
        return None
    stage, index, part, rest = m.groups()
    block = "block1" if index == "0" else f"blocks.{int(index) - 1}"
    name = _BLOCK_PART[part]
    if part.startswith("bn") or part == "downsample.1":
        return f"conv{stage}.{block}.{name}.{rest}"
    leaf = _conv_leaf(rest, factored)
    return None if leaf is None else f"conv{stage}.{block}.{name}.{leaf}"


def _c3d_key(key: str, table: Mapping[tuple[str, int], str]) -> str | None:
    m = _C3D.fullmatch(key)
    if m is None or (m.group(1), int(m.group(2))) not in table:
        return None
    return f"{table[(m.group(1), int(m.group(2)))]}.{m.group(3)}"


def peer_key(key: str, backbone: str, key_format: str) -> str:
    """The peer's name of one of our backbone's state-dict keys (the documented map, our side to theirs).

    Args:
        key: a key of our backbone's state_dict, e.g. "stages.conv3.0.downsample.0.weight".
        backbone: "r3d", "r3d18", "r21d" or "c3d".
        key_format: a key of KEY_FORMATS.
    Returns:
        e.g. "conv3.block1.downsampleconv.temporal_spatial_conv.weight" (vcop, r3d).
    """
    if backbone not in KEY_FORMATS.get(key_format, ()):
        raise ValueError(f"naming {key_format!r} does not cover backbone {backbone!r}; namings: {KEY_FORMATS}")
    if backbone == "c3d":
        name = _c3d_key(key, _C3D_VCOP if key_format == "vcop" else _C3D_PRP)
    else:
        name = _resnet_key(key, factored=backbone == "r21d")
    if name is None:
        raise ValueError(f"{backbone} key {key!r} has no name in the {key_format!r} naming")
    return name


def key_table(backbone: nn.Module, name: str, key_format: str) -> dict[str, str]:
    """peer key -> our key for every tensor of `backbone` (a bijection: two of our keys never share a peer name).

    Args:
        backbone: the network the weights go into (its state_dict keys are enumerated).
        name: its registry name ("r3d", "r3d18", "r21d", "c3d").
        key_format: a key of KEY_FORMATS covering `name`.
    """
    table = {peer_key(k, name, key_format): k for k in backbone.state_dict()}
    assert len(table) == len(backbone.state_dict()), "a peer naming maps two keys to one"
    return table


def strip_wrappers(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Split a peer file's state dict into backbone tensors (wrappers stripped) and head keys (as in the file).

    "module." and then "base_network." are removed from the start of every key that has them; a key whose first
    name is then one of HEAD_MODULES belongs to the pretext or classifier head and is set aside.

    Returns:
        (backbone key -> tensor, sorted head keys without the wrappers).
    Raises:
        ValueError: two keys of the file name the same backbone tensor once stripped.
    """
    kept: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    heads = []
    for key, value in state_dict.items():
        name = key
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name.split(".", 1)[0] in HEAD_MODULES:
            heads.append(name)
            continue
        if name in kept:
            raise ValueError(f"keys {origin[name]!r} and {key!r} both name the backbone tensor {name!r}")
        kept[name], origin[name] = value, key
    return kept, sorted(heads)


def _list(keys: list[str], most: int = 12) -> str:
    shown = ", ".join(keys[:most])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > most else shown


def map_peer_state(state_dict: Mapping[str, torch.Tensor], backbone: nn.Module,
                   name: str) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Rename a peer file's tensors to `backbone`'s keys, refusing anything that does not fit exactly.

    The naming is the one of KEY_FORMATS covering `name` under which every backbone key of the file is known
    (the namings share no key, so at most one fits). Every key of the network must be present, every key of the
    file must be a backbone key or a head key (HEAD_MODULES), and every shape must equal the network's.

    Args:
        state_dict: the file's state dict (peer names, possibly under "module." / "base_network.").
        backbone: the network to fill (its shapes are the reference).
        name: its registry name.
    Returns:
        (our key -> tensor, the naming used, the head modules dropped, e.g. ["fc7", "fc8"]).
    Raises:
        ValueError: a backbone that no naming covers, keys left unmatched either way, or a shape mismatch;
            the message lists the keys (and both shapes).
    """
    formats = [f for f, names in KEY_FORMATS.items() if name in names]
    if not formats:
        raise ValueError(f"no peer naming covers backbone {name!r}; peer weights exist for {list(PEER_BACKBONES)}")
    kept, heads = strip_wrappers(state_dict)
    if not kept:
        raise ValueError(f"the state dict holds no backbone tensor: every key is a head key ({_list(heads)})")
    tried = []
    for key_format in formats:
        table = key_table(backbone, name, key_format)
        unknown = sorted(k for k in kept if k not in table)
        missing = sorted(p for p in table if p not in kept)
        tried.append((len(kept) - len(unknown), key_format, unknown, missing))
        if not unknown and not missing:
            break
    else:
        _, key_format, unknown, missing = max(tried, key=lambda t: t[0])
        parts = [f"the weights do not load as {name} in the {key_format!r} naming"]
        if unknown:
            parts.append(f"{len(unknown)} key(s) of the file are not {name} tensors: {_list(unknown)}")
        if missing:
            parts.append(f"{len(missing)} {name} tensor(s) are absent from the file: {_list(missing)}")
        others = [f for f in formats if f != key_format]
        hint = f" (the {', '.join(others)} naming fits less)" if others else ""
        raise ValueError(f"{parts[0]}{hint}: " + "; ".join(parts[1:])
                         + " (wrong --backbone, or not one of the peers' networks?)")
    own = backbone.state_dict()
    wrong = []
    for peer, value in sorted(kept.items()):
        ours = table[peer]
        if tuple(value.shape) != tuple(own[ours].shape):
            wrong.append(f"{peer} (our {ours}): file {tuple(value.shape)} vs network {tuple(own[ours].shape)}")
    if wrong:
        raise ValueError(f"the weights do not load: {len(wrong)} tensor(s) differ in shape from this {name}'s "
                         f"(wrong --width or --backbone?): {_list(wrong, most=6)}")
    return {table[k]: v for k, v in kept.items()}, key_format, sorted({h.split(".", 1)[0] for h in heads})


def to_peer_state(state_dict: Mapping[str, torch.Tensor], name: str, key_format: str,
                  prefix: str = "") -> dict[str, torch.Tensor]:
    """Our backbone's state dict under a peer's names (the inverse of `map_peer_state`; writes peer-format files).

    Args:
        state_dict: a backbone's state_dict (keys "stages.*").
        name: its registry name.
        key_format: a key of KEY_FORMATS covering `name`.
        prefix: put before every key, e.g. "module.base_network." as a DataParallel-wrapped pretext model saves.
    """
    return {prefix + peer_key(k, name, key_format): v for k, v in state_dict.items()}

"""Peers' released weights (VCOP, PRP, VCP, PacePred naming) read through the explicit key maps.

Peer-format files are written from this project's own random models by the inverse map (`to_peer_state`), with the
wrappers the peers' files carry, then read back through `load_peer_model` and `v3s-eval retrieval --ckpt`.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from v3s.evaluate.cli import main as eval_main
from v3s.shared.checkpoint import RandomInit, load_peer_model, random_model, read_weights_file
from v3s.shared.models import build_backbone
from v3s.shared.models.peers import KEY_FORMATS, key_table, map_peer_state, strip_wrappers, to_peer_state

CASES = [(name, fmt) for fmt, names in KEY_FORMATS.items() for name in names]
WIDTH = 0.125


def random_backbone(name: str, seed: int = 0) -> torch.nn.Module:
    """A backbone with random weights and random batch-norm statistics, so that every tensor shows in the output."""
    torch.manual_seed(seed)
    net = build_backbone(name, width=WIDTH)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
            m.num_batches_tracked.fill_(7)
    return net.eval()


def features(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    with torch.no_grad():
        return net.forward_features(torch.randn(2, 3, 8, 32, 32), ["conv5", "pool", "pool3"])


@pytest.mark.parametrize("name,fmt", CASES)
@pytest.mark.parametrize("prefix", ["", "module.", "base_network.", "module.base_network."])
def test_a_peer_file_gives_identical_outputs(tmp_path, name, fmt, prefix):
    ours = random_backbone(name)
    state = to_peer_state(ours.state_dict(), name, fmt, prefix=prefix)
    state[prefix + "linear.weight"] = torch.ones(4, 8)  # a classifier head rides along and is dropped
    torch.save(state, tmp_path / "peer.pth")
    loaded = load_peer_model(tmp_path / "peer.pth", name, WIDTH)
    assert loaded.kind == "peer" and loaded.config.key_format == fmt and loaded.config.heads_dropped == ("linear",)
    assert not loaded.model.training
    want, got = features(ours), features(loaded.backbone)
    for tap in want:
        assert (want[tap] - got[tap]).abs().max().item() == 0.0, tap
    # every tensor came across, buffers included
    for key, value in ours.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[key], value), key


def test_the_maps_use_the_peers_own_names():
    """Names as the peers' model files spell them (VCOP/PacePred models/r3d.py, r21d.py, c3d.py; PRP models/c3d.py)."""
    tables = {(name, fmt): key_table(build_backbone(name, width=WIDTH), name, fmt) for name, fmt in CASES}
    expected = {
        ("r3d", "vcop"): ["conv1.temporal_spatial_conv.weight", "bn1.running_var",
                          "conv2.block1.conv1.temporal_spatial_conv.weight", "conv2.block1.bn2.num_batches_tracked",
                          "conv3.block1.downsampleconv.temporal_spatial_conv.weight", "conv5.block1.downsamplebn.bias"],
        ("r3d18", "vcop"): ["conv4.blocks.0.conv2.temporal_spatial_conv.weight", "conv5.blocks.0.bn1.weight"],
        ("r21d", "vcop"): ["conv1.spatial_conv.weight", "conv1.bn.running_mean", "conv1.temporal_conv.weight",
                           "conv3.block1.conv1.bn.weight", "conv3.block1.downsampleconv.temporal_conv.weight",
                           "conv4.block1.downsamplebn.running_mean"],
        ("c3d", "vcop"): ["conv1.weight", "conv1.bias", "bn1.weight", "conv2.bias", "conv3a.weight", "bn3b.running_var",
                          "conv5b.weight", "bn5b.num_batches_tracked"],
        ("c3d", "prp-c3d"): ["conv1.conv3d.0.weight", "conv1.conv3d.1.running_mean", "conv3_1.conv3d.0.bias",
                             "conv5_2.conv3d.1.weight"],
    }
    for case, names in expected.items():
        missing = [n for n in names if n not in tables[case]]
        assert not missing, (case, missing)
    # The downsample shortcut is the conv, not the block's first conv (a copy by position would swap them).
    assert tables[("r3d", "vcop")]["conv3.block1.downsampleconv.temporal_spatial_conv.weight"] == \
        "stages.conv3.0.downsample.0.weight"
    for (name, _), table in tables.items():  # a bijection onto the network's keys
        assert sorted(table.values()) == sorted(build_backbone(name, width=WIDTH).state_dict())


def test_pacepred_container_is_read(tmp_path):
    """PacePred saves {"epoch", "state_dict" (DataParallel keys, with its linear head), "opt_dict"}."""
    ours = random_backbone("r21d", seed=2)
    state = to_peer_state(ours.state_dict(), "r21d", "vcop", prefix="module.")
    state["module.linear.weight"], state["module.linear.bias"] = torch.zeros(4, 64), torch.zeros(4)
    torch.save({"epoch": 17, "state_dict": state, "opt_dict": {"state": {}, "param_groups": []}}, tmp_path / "p.pth.tar")
    loaded = load_peer_model(tmp_path / "p.pth.tar", "r21d", WIDTH)
    assert (features(ours)["pool"] - features(loaded.backbone)["pool"]).abs().max().item() == 0.0


def peer_file(tmp_path, state, name="w.pth"):
    torch.save(state, tmp_path / name)
    return tmp_path / name


def test_keys_left_unmatched_either_way_and_shapes_are_refused(tmp_path):
    good = to_peer_state(random_backbone("r3d").state_dict(), "r3d", "vcop")
    extra = {**good, "conv2.block1.bn3.weight": torch.ones(8)}
    with pytest.raises(ValueError, match=r"1 key\(s\) of the file are not r3d tensors: conv2\.block1\.bn3\.weight"):
        load_peer_model(peer_file(tmp_path, extra), "r3d", WIDTH)
    missing = {k: v for k, v in good.items() if k != "conv4.block1.downsamplebn.running_var"}
    with pytest.raises(ValueError, match=r"1 r3d tensor\(s\) are absent from the file: "
                                         r"conv4\.block1\.downsamplebn\.running_var"):
        load_peer_model(peer_file(tmp_path, missing), "r3d", WIDTH)
    wrong = {**good, "conv3.block1.conv1.temporal_spatial_conv.weight": torch.zeros(16, 8, 3, 3, 2)}
    with pytest.raises(ValueError, match=r"conv3\.block1\.conv1\.temporal_spatial_conv\.weight \(our "
                                         r"stages\.conv3\.0\.conv1\.weight\): file \(16, 8, 3, 3, 2\) vs network "
                                         r"\(16, 8, 3, 3, 3\)"):
        load_peer_model(peer_file(tmp_path, wrong), "r3d", WIDTH)
    with pytest.raises(ValueError, match="differ in shape.*wrong --width"):
        load_peer_model(peer_file(tmp_path, good), "r3d", 0.25)
    with pytest.raises(ValueError, match=r"do not load as r21d in the 'vcop' naming.*not r21d tensors"):
        load_peer_model(peer_file(tmp_path, good), "r21d", WIDTH)
    with pytest.raises(ValueError, match="no peer naming covers backbone 's3dg'"):
        load_peer_model(peer_file(tmp_path, good), "s3dg", WIDTH)
    twice = {**good, **{"base_network." + k: v for k, v in list(good.items())[:1]}}
    with pytest.raises(ValueError, match="both name the backbone tensor 'conv1.temporal_spatial_conv.weight'"):
        load_peer_model(peer_file(tmp_path, twice), "r3d", WIDTH)
    with pytest.raises(ValueError, match="every key is a head key"):
        load_peer_model(peer_file(tmp_path, {"fc8.weight": torch.ones(2)}), "r3d", WIDTH)
    with pytest.raises(ValueError, match=r"does not hold a state dict \(top level: \['epoch', 'note'\]\)"):
        load_peer_model(peer_file(tmp_path, {"epoch": 3, "note": "x"}), "r3d", WIDTH)


def test_a_pickled_model_object_is_refused(tmp_path):
    torch.save(build_backbone("r3d", width=WIDTH), tmp_path / "whole.pth")
    with pytest.raises(ValueError, match=r"pickled Python object \(v3s\.shared\.models\.resnet3d\.VideoResNet\).*"
                                         r"torch\.save\(model\.state_dict\(\)"):
        read_weights_file(tmp_path / "whole.pth")


def test_strip_wrappers_and_inverse():
    net = random_backbone("c3d")
    state = to_peer_state(net.state_dict(), "c3d", "prp-c3d", prefix="module.base_network.")
    state["module.up4_1.weight"] = torch.ones(1)
    state["module.conv6_cls.conv3d.0.weight"] = torch.ones(1)
    kept, heads = strip_wrappers(state)
    assert heads == ["conv6_cls.conv3d.0.weight", "up4_1.weight"] and all(not k.startswith("module") for k in kept)
    mapped, fmt, dropped = map_peer_state(state, build_backbone("c3d", width=WIDTH), "c3d")
    assert fmt == "prp-c3d" and dropped == ["conv6_cls", "up4_1"]
    assert mapped.keys() == net.state_dict().keys()
    assert all(torch.equal(mapped[k], v) for k, v in net.state_dict().items())


# ---- through the evaluation commands -------------------------------------------------------------------------


def run(args, code=0):
    result = CliRunner().invoke(eval_main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_retrieval_reads_a_peer_file_like_the_model_it_was_written_from(tiny_ucf_store, tmp_path):
    """A peer-format file of a random init gives the very features of that random init, and caches by its hash."""
    init = RandomInit("r3d", WIDTH, seed=5)
    state = to_peer_state(random_model(init).backbone.state_dict(), "r3d", "vcop", prefix="module.base_network.")
    state["module.fc7.weight"], state["module.fc8.weight"] = torch.zeros(512, 128), torch.zeros(6, 1536)
    ckpt = peer_file(tmp_path, state, "vcop_r3d.pth")
    common = ["retrieval", "--store", tiny_ucf_store, "--dataset", "ucf101", "--clip-len", 8, "--clip-size", 32,
              "--clips", 2, "--ks", "1,5", "--workers", 0, "--quiet", "--json"]
    peer = json.loads(run([*common, "--ckpt", ckpt, "--backbone", "r3d", "--width", WIDTH,
                           "--out", tmp_path / "peer"]).stdout)
    rand = json.loads(run([*common, "--random", "--backbone", "r3d", "--width", WIDTH, "--seed", 5,
                           "--cache-dir", tmp_path / "rc", "--out", tmp_path / "rand"]).stdout)
    m = peer["model"]
    assert m["kind"] == "peer" and m["key_format"] == "vcop" and m["heads_dropped"] == ["fc7", "fc8"]
    assert m["peer"] == {"backbone": "r3d", "width": WIDTH, "input_mode": "rgb", "key_format": "vcop"}
    assert len(m["sha256"]) == 64 and peer["features"]["test"]["cache_hit"] is False
    for role in ("train", "test"):
        a = np.load(peer["features"][role]["path"])["video/conv5"]
        b = np.load(rand["features"][role]["path"])["video/conv5"]
        assert np.array_equal(a, b)
    assert peer["topk"] == rand["topk"]
    again = json.loads(run([*common, "--ckpt", ckpt, "--backbone", "r3d", "--width", WIDTH,
                            "--out", tmp_path / "peer"]).stdout)
    assert again["features"]["test"]["cache_hit"] is True


def test_peer_file_errors_through_the_commands(tiny_ucf_store, tmp_path):
    state = to_peer_state(random_backbone("c3d").state_dict(), "c3d", "vcop")
    ckpt = peer_file(tmp_path, state, "c3d.pth")
    store = ["--store", tiny_ucf_store, "--dataset", "ucf101"]
    cases = [
        (["retrieval", "--ckpt", ckpt, *store], "say what network it holds with --backbone"),
        (["retrieval", "--ckpt", ckpt, "--backbone", "c3d", *store], "and --width"),
        (["retrieval", "--ckpt", ckpt, "--backbone", "r3d", "--width", WIDTH, *store],
         "do not load as r3d in the 'vcop' naming"),
        (["retrieval", "--ckpt", ckpt, "--random", "--backbone", "c3d", *store], "exactly one of --ckpt"),
        (["recognition", "--ckpt", ckpt, *store], "not a v3s checkpoint but a bare state dict"),
        (["gradcam", "--ckpt", ckpt, *store, "--index", 0], "this one needs a v3s checkpoint"),
    ]
    for args, message in cases:
        result = run([*args, "--out", tmp_path / "o"], code=2)
        assert message in result.output and "Traceback" not in result.output, (args, result.output)

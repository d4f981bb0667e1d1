"""Backbones, heads and checkpoint loading: parameter counts, shapes, gradients, width scaling, bf16,
channels_last and graph-break-free tracing, all on tiny widths and clips so the file runs in seconds."""
from __future__ import annotations

import pytest
import torch

from v3s.shared.models import (BACKBONES, ClassifierHead, V3SHead, VideoModel, build_backbone,
                               load_backbone_weights)

# Public-definition counts (backbone without FC), docs/backbones.md. S3D-G: 9.10-9.13M, take the middle.
PUBLIC_PARAMS = {"c3d": 27.66e6, "r3d": 14.36e6, "r3d18": 33.17e6, "r21d": 14.37e6, "s3dg": 9.115e6}
# conv5 channels at width 1 and the (T, H, W) of conv5 after MaxPool3d((1,2,2)) at 16x112x112.
CONV5_AT_112 = {"c3d": 512 * 2 * 3 * 3, "r3d": 9216, "r3d18": 9216, "r21d": 9216, "s3dg": 1024 * 2 * 1 * 1}
TINY = (2, 3, 8, 32, 32)


def tiny_clip(name: str, batch: int = 2) -> torch.Tensor:
    # s3dg strides 32x in space, and the conv5 tap max-pools 2x2 there: it needs 64x64 for that tap.
    return torch.randn(batch, 3, 8, 64 if name == "s3dg" else 32, 64 if name == "s3dg" else 32)
NAMES = sorted(BACKBONES)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny(name: str, width: float = 0.125) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone(name, width=width)


def test_registry_names():
    assert set(BACKBONES) == {"c3d", "r3d", "r3d18", "r21d", "s3dg"}


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_public_definition(name):
    count = n_params(build_backbone(name))
    assert abs(count - PUBLIC_PARAMS[name]) / PUBLIC_PARAMS[name] < 0.005, count


@pytest.mark.parametrize("name", NAMES)
def test_width_scales_params_quadratically(name):
    full, half, quarter = (n_params(build_backbone(name, width=w)) for w in (1.0, 0.5, 0.25))
    assert 0.22 < half / full < 0.28, half / full
    assert 0.05 < quarter / full < 0.08, quarter / full


@pytest.mark.parametrize("name", NAMES)
def test_tiny_forward_shapes_grads_and_taps(name):
    bb = tiny(name)
    x = tiny_clip(name)
    feat = bb(x)
    assert feat.shape == (2, bb.feature_dim)
    assert torch.isfinite(feat).all()
    feat.square().mean().backward()
    no_grad = [n for n, p in bb.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, no_grad
    assert all(p.grad.abs().sum() > 0 for p in bb.parameters()), "some parameter got an all-zero gradient"

    bb.eval()
    with torch.no_grad():
        taps = bb.forward_features(x, bb.tap_names)
        assert list(taps) == list(bb.tap_names)
        for t in ("pool3", "pool4", "pool5"):
            assert taps[t].shape == (2, bb.tap_dims[t])
        assert taps["pool5"].shape == (2, bb.feature_dim)
        torch.testing.assert_close(taps["pool"], bb(x))
        assert taps["conv5"].dim() == 2 and taps["conv5"].shape[0] == 2
        only = bb.forward_features(x, ["conv5"])
        assert list(only) == ["conv5"]
        torch.testing.assert_close(only["conv5"], taps["conv5"])


@pytest.mark.parametrize("name", [n if n in ("r3d", "r21d") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in NAMES])
def test_full_width_forward_at_16x112x112(name):
    # Forward only, no grad: a second or two per family here; the 40-GFLOP ones run by default.
    torch.manual_seed(0)
    bb = build_backbone(name).eval()
    with torch.no_grad():
        out = bb.forward_features(torch.randn(1, 3, 16, 112, 112), ["conv5", "pool"])
    assert out["conv5"].shape == (1, CONV5_AT_112[name])
    assert out["pool"].shape == (1, bb.feature_dim)
    assert torch.isfinite(out["conv5"]).all() and torch.isfinite(out["pool"]).all()


def test_unknown_name_and_bad_width_raise():
    with pytest.raises(ValueError, match="r21d"):
        build_backbone("resnet50")
    for bad in (0, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="width"):
            build_backbone("r21d", width=bad)


def test_bad_taps_and_input_raise():
    bb = tiny("r21d")
    with pytest.raises(ValueError, match="fc6"):
        bb.forward_features(torch.randn(*TINY), ["fc6"])
    with pytest.raises(ValueError, match="string"):
        bb.forward_features(torch.randn(*TINY), "pool")
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        bb(torch.randn(2, 8, 3, 32, 32))
    with pytest.raises(ValueError, match="conv5"):
        tiny("s3dg").eval().forward_features(torch.randn(1, 3, 8, 32, 32), ["conv5"])


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_and_channels_last(name):
    bb = tiny(name).eval()
    x = torch.randn(*TINY)
    with torch.no_grad():
        ref = bb(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = bb(x)
        bb_cl = bb.to(memory_format=torch.channels_last_3d)
        cl = bb_cl(x.to(memory_format=torch.channels_last_3d))
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), ref, atol=0.1 * ref.abs().max().item() + 1e-3, rtol=0.1)
    torch.testing.assert_close(cl, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_no_graph_breaks_in_forward(name):
    torch._dynamo.reset()
    bb = tiny(name, width=0.0625).train()  # training mode: what torch.compile sees in pretraining
    # forward() is forward_features(x, ("pool",)), so one trace with every tap covers both.
    explanation = torch._dynamo.explain(bb.forward_features)(tiny_clip(name), bb.tap_names)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
def test_torch_compile_matches_eager():
    torch._dynamo.reset()
    bb = tiny("r21d", width=0.0625).eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(bb)(x), bb(x), atol=1e-4, rtol=1e-4)


def test_heads_shapes_and_validation():
    feat = torch.randn(4, 32)
    s, t = V3SHead(32, n_spatial=10, n_temporal=11, dropout=0.5)(feat)
    assert s.shape == (4, 10) and t.shape == (4, 11)
    assert ClassifierHead(32, 101, dropout=0.5)(feat).shape == (4, 101)
    with pytest.raises(ValueError, match="n_temporal"):
        V3SHead(32, 10, 0)
    with pytest.raises(ValueError, match="dropout"):
        ClassifierHead(32, 5, dropout=1.0)


def test_load_backbone_weights_takes_backbone_only():
    torch.manual_seed(0)
    pretrain = VideoModel(build_backbone("r21d", width=0.125), V3SHead(64, 10, 11))
    torch.manual_seed(1)
    finetune = VideoModel(build_backbone("r21d", width=0.125), ClassifierHead(64, 101))
    head_before = {k: v.clone() for k, v in finetune.head.state_dict().items()}

    state = pretrain.state_dict()
    dropped = "stages.conv5.0.conv2.0.weight"
    del state["backbone." + dropped]
    state["backbone.extra.weight"] = torch.zeros(3)
    missing, unexpected = load_backbone_weights(finetune.backbone, state)
    assert missing == [dropped]
    assert unexpected == ["extra.weight"]

    for k, v in finetune.backbone.state_dict().items():
        if k != dropped:
            torch.testing.assert_close(v, pretrain.backbone.state_dict()[k], msg=k)
    assert not torch.equal(finetune.backbone.state_dict()[dropped], pretrain.backbone.state_dict()[dropped])
    for k, v in finetune.head.state_dict().items():
        torch.testing.assert_close(v, head_before[k], msg=k)

    x = torch.randn(*TINY)
    assert finetune.eval()(x).shape == (2, 101)


def test_load_backbone_weights_strips_wrappers_and_rejects_mismatches():
    src = VideoModel(build_backbone("c3d", width=0.125), ClassifierHead(64, 5))
    wrapped = {"module." + k: v for k, v in src.state_dict().items()}
    dst = build_backbone("c3d", width=0.125)
    assert load_backbone_weights(dst, wrapped) == ([], [])
    torch.testing.assert_close(dst.state_dict(), src.backbone.state_dict())

    assert load_backbone_weights(build_backbone("c3d", width=0.125), src.backbone.state_dict(), prefix="") == ([], [])
    with pytest.raises(ValueError, match="prefix"):
        load_backbone_weights(dst, src.backbone.state_dict())
    with pytest.raises(ValueError, match="shape mismatch"):
        load_backbone_weights(build_backbone("c3d", width=0.25), src.state_dict())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name, monkeypatch):
    # fp32 on both sides: TF32 convolutions and matmuls (allowed by default for cuDNN) would round to 10 mantissa bits.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    bb = tiny(name).eval()
    x = tiny_clip(name)
    with torch.no_grad():
        ref = bb(x)
        out = bb.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-3)


def test_diff_input_mode_feeds_frame_differences():
    torch.manual_seed(0)
    rgb = build_backbone("r21d", width=0.125).eval()
    diff = build_backbone("r21d", width=0.125, input_mode="diff").eval()
    diff.load_state_dict(rgb.state_dict())  # the modality adds no parameters
    x = torch.randn(2, 3, 9, 32, 32)
    with torch.no_grad():
        assert torch.allclose(diff(x), rgb(x[:, :, 1:] - x[:, :, :-1]), atol=1e-6)
        assert not torch.allclose(diff(x), rgb(x[:, :, 1:]), atol=1e-3)
    with pytest.raises(ValueError, match="input_mode"):
        build_backbone("r21d", width=0.125, input_mode="flow")
    with pytest.raises(ValueError, match=">= 2 frames"):
        diff(torch.randn(1, 3, 1, 32, 32))


# ---- initialisation schemes ----------------------------------------------------------------------------------


def seeded(name: str, scheme: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_backbone(name, width=0.25, init_scheme=scheme)


def _convs(module: torch.nn.Module) -> list[torch.nn.Conv3d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv3d)]


@pytest.mark.parametrize("name", NAMES)
def test_pytorch_init_is_torchs_own_default_and_differs_from_he(name):
    """--init-scheme pytorch gives exactly the modules as torch initialises them (no init function applied), and
    its statistics are torch's kaiming_uniform(a=sqrt(5)); he gives He normal (fan_out); the two differ."""
    import copy
    import math

    he, pt = seeded(name, "he"), seeded(name, "pytorch")
    torch.manual_seed(0)
    bare = BACKBONES[name](width=0.25)  # the registry builder constructs the modules and initialises nothing
    for (k, a), b in zip(pt.state_dict().items(), bare.state_dict().values()):
        assert torch.equal(a, b), k
    for c_he, c_pt in zip(_convs(he), _convs(pt)):
        assert not torch.equal(c_he.weight, c_pt.weight)
        k = math.prod(c_pt.kernel_size)
        bound = 1 / math.sqrt(c_pt.in_channels // c_pt.groups * k)  # torch's default for a conv weight
        assert c_pt.weight.abs().max() <= bound
        he_std = math.sqrt(2 / (c_he.out_channels * k))  # kaiming_normal_(mode="fan_out", relu)
        if c_pt.weight.numel() >= 2000:
            assert c_pt.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
            assert c_he.weight.std().item() == pytest.approx(he_std, rel=0.1)
        if c_pt.bias is not None:
            assert c_pt.bias.abs().max() <= bound and not torch.all(c_pt.bias == 0)
            assert torch.all(c_he.bias == 0)
    if name != "s3dg":  # s3dg builds its Inception blocks before its stem: module order is not construction order
        # Replaying each module's own reset_parameters in module order under the same seed draws the same values.
        torch.manual_seed(0)
        for m in pt.modules():
            if hasattr(m, "reset_parameters") and not list(m.children()):
                fresh = copy.deepcopy(m)
                fresh.reset_parameters()
                for a, b in zip(m.state_dict().values(), fresh.state_dict().values()):
                    assert torch.equal(a, b)


def test_init_scheme_is_seeded_and_checked():
    a, b = seeded("r3d", "pytorch", seed=1), seeded("r3d", "pytorch", seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(_convs(a)[0].weight, _convs(seeded("r3d", "pytorch", seed=2))[0].weight)
    with pytest.raises(ValueError, match=r"unknown init scheme 'xavier'; valid schemes are \['he', 'pytorch'\]"):
        build_backbone("r3d", width=0.25, init_scheme="xavier")

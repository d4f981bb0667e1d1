"""Spatial V3S transforms: the homography solver, the fused one-pass warp, finetune/test geometry."""
from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest
import torch

from v3s.shared import spatial as S
from v3s.shared.labels import PRESETS, LabelSpace, SpatialClass

ALL_SPATIAL = sorted({c for name in PRESETS for c in LabelSpace.preset(name).spatial_classes},
                     key=lambda c: (c.kind, c.side or "", c.a, c.b, c.c))
LS = LabelSpace()
def CUDA(test):
    """A CUDA test: selected by `-m gpu`, skipped without a GPU."""
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")(test))


def smooth_frame(h: int = 128, w: int = 171) -> np.ndarray:
    """A smooth, non-symmetric RGB test image (uint8 (h, w, 3))."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0), 127 + 120 * np.sin((xx + yy) / 13.0),
                    xx * 1.2 + yy * 0.3], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def random_clips(b=3, t=4, h=40, w=57, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def apply_h(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ m.T
    return p[:, :2] / p[:, 2:]


# ---- the homography ------------------------------------------------------------------------------------
def test_solver_equals_opencv_on_the_papers_corner_sets():
    for size in (224, 256, 171):
        src = S.frame_corners(size, size)
        for c in ALL_SPATIAL:
            # OpenCV takes float32 points: give both solvers the same (float32-representable) corners.
            dst = S.transformed_corners(c, size).astype(np.float32)
            ours = S.solve_homography(torch.from_numpy(src)[None], torch.from_numpy(dst.astype(np.float64))[None])
            ref = cv2.getPerspectiveTransform(src.astype(np.float32), dst)
            np.testing.assert_allclose(ours[0].numpy(), ref, atol=1e-6, rtol=0, err_msg=c.name)


def test_transformed_corners_land_where_the_paper_says():
    w = h = 224.0
    m = S.class_homographies(ALL_SPATIAL).numpy()
    for mi, c in zip(m, ALL_SPATIAL):
        np.testing.assert_allclose(apply_h(mi, S.frame_corners(w, h)), S.transformed_corners(c), atol=1e-9)
    # The paper's own examples: scale (1, 0.3) (Fig. 2) and projection, head end right, c = 0.5.
    assert S.transformed_corners(SpatialClass("scale", a=1, b=0.3)).tolist() == [[0, 0], [0, 0.3 * h], [w, 0.3 * h], [w, 0]]
    right = S.transformed_corners(SpatialClass("projection", side="right", c=0.5))
    assert right.tolist() == [[0, 0], [0, h], [w, (h + 0.5 * h) / 2], [w, (h - 0.5 * h) / 2]]
    for side in ("left", "right", "top", "bottom"):  # the head end is c times the frame side, the tail unchanged
        q = S.transformed_corners(SpatialClass("projection", side=side, c=0.65))
        edges = {"left": (q[0], q[1]), "right": (q[2], q[3]), "top": (q[0], q[3]), "bottom": (q[1], q[2])}
        tails = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
        assert np.isclose(np.linalg.norm(np.subtract(*edges[side])), 0.65 * w)
        assert np.isclose(np.linalg.norm(np.subtract(*edges[tails[side]])), w)


def test_identity_and_unit_scale_are_identity_matrices():
    m = S.class_homographies([SpatialClass("identity"), SpatialClass("scale", a=1.0, b=1.0)])
    np.testing.assert_allclose(m.numpy(), np.stack([np.eye(3)] * 2), atol=1e-12)


def test_solver_rejects_bad_shapes():
    with pytest.raises(ValueError, match="corners must both be"):
        S.solve_homography(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2))


# ---- the pretext geometry --------------------------------------------------------------------------------
@pytest.mark.parametrize("in_hw, canvas, crop", [((128, 171), 224, 112), ((240, 320), 224, 112), ((128, 171), 256, 224)])
def test_every_sampling_coordinate_lies_inside_the_frame(in_hw, canvas, crop):
    """No output pixel reads outside the source frame, for every class and the extreme and random crops."""
    h, w = in_hw
    ls = LabelSpace(ss=tuple({(c.a, c.b) for c in ALL_SPATIAL if c.kind == "scale"}),
                    sp=tuple({c.c for c in ALL_SPATIAL if c.kind == "projection"}))
    labels = torch.arange(ls.n_spatial).repeat_interleave(6)
    u = torch.rand(len(labels), 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u[0::6] = 0.0
    u[1::6] = 1.0 - 1e-12
    u[2::6, 0], u[2::6, 1] = 0.0, 1.0 - 1e-12
    boxes = S.crop_boxes(labels, ls, u, canvas, crop)
    for out_size in (112, 37):
        xy = S.sampling_coords(S.pretext_homographies(labels, ls, boxes, in_hw, out_size, canvas), out_size,
                               dtype=torch.float64)
        assert xy[..., 0].min() >= 0 and xy[..., 0].max() <= w and xy[..., 1].min() >= 0 and xy[..., 1].max() <= h
    # The check can fail: a projection square 10% larger than the head end pokes out of the trapezoid.
    big = boxes.clone()
    proj = torch.tensor([ls.spatial_classes[i].kind == "projection" for i in labels.tolist()])
    big[proj, 2] *= 1.1
    xy = S.sampling_coords(S.pretext_homographies(labels, ls, big, in_hw, 112, canvas), 112, dtype=torch.float64)
    assert xy[..., 1].min() < 0 or xy[..., 1].max() > h or xy[..., 0].min() < 0 or xy[..., 0].max() > w


def test_crop_boxes_follow_the_paper():
    labels = torch.arange(LS.n_spatial)
    u = torch.full((LS.n_spatial, 2), 0.999999, dtype=torch.float64)
    boxes = S.crop_boxes(labels, LS, u)
    for c, (x0, y0, side) in zip(LS.spatial_classes, boxes.tolist()):
        if c.kind == "projection":  # the l x l square at the head end, l = c * 224
            l = c.c * 224
            assert side == pytest.approx(l)
            head = {"left": x0, "right": 224 - (x0 + side), "top": y0, "bottom": 224 - (y0 + side)}[c.side]
            assert head == pytest.approx(0)
        else:  # a 112 crop, here at its largest offset, still inside the a*224 x b*224 transformed frame
            assert side == 112 and x0 + side <= c.a * 224 and y0 + side <= c.b * 224
            assert x0 + side > c.a * 224 - 1 and y0 + side > c.b * 224 - 1


def test_identity_on_a_canvas_sized_frame_is_the_plain_crop():
    clips = random_clips(b=4, t=3, h=224, w=224)
    labels = torch.zeros(4, dtype=torch.long)
    u = torch.tensor([[0.0, 0.0], [0.5, 0.2], [0.99, 0.99], [0.3, 0.7]], dtype=torch.float64)
    boxes = S.crop_boxes(labels, LS, u)
    out = S.warp_clips(clips, S.pretext_homographies(labels, LS, boxes, (224, 224), 112), 112)
    for i, (x0, y0, _) in enumerate(boxes.long().tolist()):
        plain = clips[i, :, y0:y0 + 112, x0:x0 + 112].permute(3, 0, 1, 2).float()
        torch.testing.assert_close(out[i], plain, atol=5e-3, rtol=0)  # float32 grid rounding
        assert torch.equal(out[i].round(), plain)


def reference_vs_fused(frame: np.ndarray, in_hw) -> list[tuple[str, float, float, float]]:
    labels = torch.arange(LS.n_spatial)
    boxes = S.crop_boxes(labels, LS, torch.full((LS.n_spatial, 2), 0.37, dtype=torch.float64)).round()
    clip = torch.from_numpy(frame.copy())[None, None].expand(LS.n_spatial, 1, *in_hw, 3)
    fused = S.warp_clips(clip, S.pretext_homographies(labels, LS, boxes, in_hw, 112), 112)[:, :, 0]
    moved = boxes.clone()
    moved[:, 0] += 1  # the same crop one canvas pixel to the right: what a geometry error would look like
    shifted = S.warp_clips(clip, S.pretext_homographies(labels, LS, moved, in_hw, 112), 112)[:, :, 0]
    rows = []
    for i, c in enumerate(LS.spatial_classes):
        ref = torch.from_numpy(S.reference_pretext_frame(frame, c, boxes[i].long().tolist())).permute(2, 0, 1).float()
        d = (fused[i] - ref).abs()
        rows.append((c.name, d.mean().item(), d.max().item(), (shifted[i] - ref).abs().mean().item()))
    return rows


def test_fused_equals_the_three_step_reference():
    """One interpolation from the source vs OpenCV's resize -> warpPerspective -> crop -> resize."""
    for name, mean, worst, shifted in reference_vs_fused(smooth_frame(), (128, 171)):
        assert mean < 0.6 and worst < 4, (name, mean, worst)
        assert shifted > 4 * mean, (name, mean, shifted)


def test_fused_equals_the_reference_on_a_real_frame(reference_videos, ffmpeg):
    video = sorted(reference_videos.glob("v_*.avi"))[0]
    raw = subprocess.run([ffmpeg, "-v", "error", "-i", str(video), "-vf", "scale=171:128", "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    frame = np.frombuffer(raw, np.uint8).reshape(128, 171, 3)
    for name, mean, worst, shifted in reference_vs_fused(frame, (128, 171)):
        # Real frames have sharp edges, where one interpolation and three disagree most.
        assert mean < 2.0 and worst < 64, (name, mean, worst)
        assert shifted > 2 * mean, (name, mean, shifted)


def test_sample_spatial_params_is_deterministic_and_checks_labels():
    labels = torch.tensor([0, 3, 9, 18, 18])
    a = S.sample_spatial_params(labels, LS, torch.Generator().manual_seed(5), (128, 171))
    b = S.sample_spatial_params(labels, LS, torch.Generator().manual_seed(5), (128, 171))
    c = S.sample_spatial_params(labels, LS, torch.Generator().manual_seed(6), (128, 171))
    assert a.shape == (5, 3, 3) and a.dtype == torch.float64 and torch.equal(a, b) and not torch.equal(a, c)
    torch.testing.assert_close(a[3], a[4])  # projection crops are fixed by the class
    with pytest.raises(ValueError, match="spatial labels must lie in \\[0, 19\\)"):
        S.sample_spatial_params(torch.tensor([19]), LS, None, (128, 171))


# ---- the warp as a batched pure function -------------------------------------------------------------------
def test_batched_equals_per_sample_loop_and_input_is_not_mutated():
    clips = random_clips(b=5, t=3)
    keep = clips.clone()
    labels = torch.tensor([0, 2, 8, 12, 17])
    h = S.sample_spatial_params(labels, LS, torch.Generator().manual_seed(0), (40, 57), out_size=24)
    out = S.warp_clips(clips, h, 24)
    assert out.shape == (5, 3, 3, 24, 24) and out.dtype == torch.float32
    for i in range(5):
        torch.testing.assert_close(out[i:i + 1], S.warp_clips(clips[i:i + 1], h[i:i + 1], 24))
    assert torch.equal(clips, keep)
    # float input (B, C, T, H, W) gives the same result as the uint8 layout
    as_float = clips.permute(0, 4, 1, 2, 3).double()
    keep_f = as_float.clone()
    torch.testing.assert_close(S.warp_clips(as_float, h, 24).float(), out, atol=5e-3, rtol=0)
    assert torch.equal(as_float, keep_f)


def test_whole_batch_path_equals_per_clip_path():
    """The GPU default (whole batch, full frames) and the CPU default (clip by clip, read rectangles) agree."""
    clips = random_clips(b=6, t=3)
    labels = torch.tensor([0, 2, 8, 12, 17, 18])
    h = S.sample_spatial_params(labels, LS, torch.Generator().manual_seed(2), (40, 57), out_size=24)
    h[5] = S.center_crop_params(1, (40, 57), 24)[0]
    flip = S.train_geometry_params(1, (40, 57), 24, torch.Generator().manual_seed(1))[0]
    h[4] = flip
    for x in (clips, clips.permute(0, 4, 1, 2, 3).double()):
        a, b = S.warp_clips(x, h, 24, per_clip=True), S.warp_clips(x, h, 24, per_clip=False)
        assert a.dtype == b.dtype and a.is_contiguous() and b.is_contiguous()
        torch.testing.assert_close(a, b, atol=2e-3, rtol=0)
    gen = [torch.Generator().manual_seed(7) for _ in range(2)]
    torch.testing.assert_close(S.pretext_batch(clips, labels, LS, gen[0], 24),
                               S.normalize(S.warp_clips(clips, S.sample_spatial_params(labels, LS, gen[1], (40, 57), 24),
                                                        24, per_clip=False)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtype_is_kept(dtype):
    clips = random_clips(b=2, t=2).permute(0, 4, 1, 2, 3).to(dtype)
    h = S.center_crop_params(2, (40, 57), 16)
    assert S.warp_clips(clips, h, 16).dtype == dtype
    assert S.normalize(S.warp_clips(clips, h, 16)).dtype == dtype


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="uint8 clips must be"):
        S.warp_clips(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 3, 3), 4)
    with pytest.raises(ValueError, match="homographies must be \\(2, 3, 3\\)"):
        S.warp_clips(random_clips(b=2), torch.zeros(3, 3, 3), 4)
    with pytest.raises(ValueError, match="smaller than the 112 crop"):
        S.center_crop_params(1, (100, 171), 112)
    with pytest.raises(ValueError, match="int16"):
        S.warp_clips(torch.zeros(1, 3, 2, 8, 8, dtype=torch.int16), torch.eye(3)[None], 4)


@CUDA
def test_cpu_equals_cuda():
    """The same algorithm on both devices (the whole-batch path; the CPU's default per-clip path is compared with
    it on the CPU in test_whole_batch_path_equals_per_clip_path). Sampling coordinates are float32 on both devices
    and bilinear weights of 0..255 values are rounded differently by the two grid_sample kernels: a difference of
    1e-3 of a grey level is 4e-6 of the value range, far below one JPEG quantisation step."""
    clips = random_clips(b=4, t=3)
    labels = torch.tensor([0, 5, 10, 15])
    h = S.sample_spatial_params(labels, LS, torch.Generator().manual_seed(0), (40, 57), out_size=24)
    cpu = S.warp_clips(clips, h, 24, per_clip=False)
    gpu = S.warp_clips(clips.cuda(), h, 24, per_clip=False)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=0)
    g = S.pretext_batch(clips.cuda(), labels.cuda(), LS, torch.Generator().manual_seed(1), out_size=24)
    torch.testing.assert_close(g.cpu(), S.pretext_batch(clips, labels, LS, torch.Generator().manual_seed(1), 24),
                               atol=1e-4, rtol=0)


@CUDA
def test_training_batches_do_not_sync_the_host_with_the_gpu():
    """After the first batch (which caches the normalisation constants) a batch's only host-to-device copy is
    the pinned, non_blocking copy of its homographies."""
    clips = random_clips(b=4, t=3).cuda()
    labels = torch.tensor([0, 5, 10, 15])
    for per_clip in (False, True):
        S._warp(clips, S.center_crop_params(4, (40, 57), 24), 24, normalise=True, per_clip=per_clip)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        S.pretext_batch(clips, labels, LS, torch.Generator().manual_seed(1), out_size=24)
        S.finetune_batch(clips, torch.Generator().manual_seed(1), out_size=24)
        S.eval_batch(clips, 24)
        S.normalize(clips.permute(0, 4, 1, 2, 3).float())
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ---- finetune and test geometry ------------------------------------------------------------------------
def test_train_geometry_is_an_exact_crop_or_flipped_crop():
    clips = random_clips(b=16, t=2, h=30, w=41)
    h = S.train_geometry_params(16, (30, 41), 20, torch.Generator().manual_seed(3))
    out = S.warp_clips(clips, h, 20)
    flips = 0
    for i in range(16):
        x0, y0, flip = int(h[i, 0, 2]), int(h[i, 1, 2]), bool(h[i, 0, 0] < 0)
        x0 = x0 - 20 if flip else x0
        plain = clips[i, :, y0:y0 + 20, x0:x0 + 20].permute(3, 0, 1, 2).float()
        assert torch.equal(out[i].round(), plain.flip(-1) if flip else plain)
        flips += flip
    assert 0 < flips < 16
    offsets = S.train_geometry_params(2000, (30, 41), 20, torch.Generator().manual_seed(0))[:, :2, 2]
    assert set(offsets[:, 1].long().tolist()) == set(range(11))  # every row offset 0..H-out occurs


def test_train_geometry_without_flip_keeps_the_crops_and_never_flips():
    with_flip = S.train_geometry_params(64, (30, 41), 20, torch.Generator().manual_seed(5))
    without = S.train_geometry_params(64, (30, 41), 20, torch.Generator().manual_seed(5), flip=False)
    assert bool((with_flip[:, 0, 0] < 0).any()) and bool((without[:, 0, 0] > 0).all())
    flipped = with_flip[:, 0, 0] < 0
    # Same draws: a flipped crop's right edge is the unflipped crop's left edge + out_size.
    assert torch.equal(torch.where(flipped, with_flip[:, 0, 2] - 20, with_flip[:, 0, 2]), without[:, 0, 2])
    assert torch.equal(with_flip[:, 1, 2], without[:, 1, 2])


def test_eval_batch_is_the_normalised_centre_crop():
    clips = random_clips(b=2, t=3, h=128, w=171)
    out = S.eval_batch(clips, 112)
    plain = clips[:, :, 8:120, 30:142].permute(0, 4, 1, 2, 3).float()  # torchvision's centre crop offsets
    torch.testing.assert_close(out, S.normalize(plain), atol=1e-4, rtol=0)
    mean = torch.tensor(S.MEAN).view(1, 3, 1, 1, 1) * 255
    assert torch.allclose(S.normalize(mean.expand(1, 3, 1, 2, 2).clone()), torch.zeros(1, 3, 1, 2, 2), atol=1e-5)


def test_finetune_and_pretext_batches_have_the_training_shapes():
    clips = random_clips(b=3, t=4, h=64, w=86)
    f = S.finetune_batch(clips, torch.Generator().manual_seed(0), 48)
    p = S.pretext_batch(clips, torch.tensor([0, 4, 11]), LS, torch.Generator().manual_seed(0), 48)
    for x in (f, p):
        assert x.shape == (3, 3, 4, 48, 48) and x.dtype == torch.float32 and torch.isfinite(x).all()
        assert -3 < x.min() < x.max() < 3
    # pretext_batch = params + warp + normalise
    h = S.sample_spatial_params(torch.tensor([0, 4, 11]), LS, torch.Generator().manual_seed(0), (64, 86), 48)
    torch.testing.assert_close(p, S.normalize(S.warp_clips(clips, h, 48)), atol=1e-5, rtol=0)


def test_pretext_canvas_and_crop_set_the_share_of_the_frame():
    """--canvas / --crop: with the crop as large as the canvas, the identity class shows the whole frame, resized
    (bilinear, pixel centres as F.interpolate's align_corners=False); the paper's 224/112 shows a quarter of it."""
    clips = random_clips(b=2, t=3, h=40, w=56)
    identity = torch.zeros(2, dtype=torch.long)
    whole = S.pretext_batch(clips, identity, LS, torch.Generator().manual_seed(0), 20, canvas=112, crop=112)
    frames = clips.permute(0, 1, 4, 2, 3).flatten(0, 1).float() / 255
    resized = torch.nn.functional.interpolate(frames, size=(20, 20), mode="bilinear", align_corners=False)
    expected = S.normalize(resized.unflatten(0, (2, 3)).permute(0, 2, 1, 3, 4) * 255)   # (B, 3, T, H, W)
    torch.testing.assert_close(whole, expected, atol=1e-3, rtol=0)
    paper = S.pretext_batch(clips, identity, LS, torch.Generator().manual_seed(0), 20)
    assert (paper - whole).abs().mean() > 0.1
    h = S.sample_spatial_params(identity, LS, torch.Generator().manual_seed(0), (40, 56), 20, 128, 112)
    corners = h[0] @ torch.tensor([[0.0, 20.0], [0.0, 20.0], [1.0, 1.0]], dtype=torch.float64)
    assert corners[0, 1] - corners[0, 0] == pytest.approx(56 * 112 / 128)   # the crop spans 7/8 of the width


def test_pixel_noise_has_each_clips_level_is_deterministic_and_leaves_the_input_alone():
    x = torch.zeros(64, 3, 4, 16, 16)
    sigma = torch.linspace(0, 6, 64, dtype=torch.float64)
    noise = torch.stack([sigma, torch.arange(64, dtype=torch.float64)], 1)
    y = S.add_pixel_noise(x, noise)
    assert x.abs().max() == 0 and y.shape == x.shape and y.dtype == x.dtype
    grey = y * torch.tensor(S.STD).view(1, 3, 1, 1, 1) * 255           # back to grey levels
    levels = grey.flatten(1).std(1).double()
    assert float(levels[0]) == 0 and torch.allclose(levels[1:], sigma[1:], rtol=0.1)
    assert torch.equal(y, S.add_pixel_noise(x, noise))                 # (sigma, seed) fixes the noise
    other = noise.clone()
    other[:, 1] += 1000
    assert not torch.equal(y[1:], S.add_pixel_noise(x, other)[1:])
    assert S.add_pixel_noise(x, torch.zeros(64, 2, dtype=torch.float64)) is x


def test_network_input_adds_the_items_noise_after_the_warp():
    g = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (2, 4, 20, 24, 3), dtype=torch.uint8, generator=g)
    h = S.center_crop_params(2, (20, 24), 16)
    plain = S.network_input(clips, h, 16)
    assert torch.equal(S.network_input(clips, h, 16, torch.zeros(2, dtype=torch.float64)), plain)
    noisy = S.network_input(clips, h, 16, torch.tensor([[0.0, 1.0], [4.0, 2.0]], dtype=torch.float64))
    assert torch.equal(noisy[0], plain[0]) and not torch.equal(noisy[1], plain[1])

"""Grad-CAM heat maps over the frames of one clip (paper section 4.6, Fig. 5), on the last conv stage.

For a target score y (a class logit of a finetuned classifier, or the predicted class of a V3S head), the
activations A of stage conv5 (B, C, T', H', W') and their gradients dy/dA give channel weights
alpha_c = mean over (t, h, w) of dy/dA_c (Selvaraju et al., ICCV 2017, with the average taken over time as
well as space); the map is ReLU(sum_c alpha_c A_c), upsampled trilinearly to the clip's (T, H, W) and divided by
its maximum over the whole clip, so frames of one clip share one scale.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v3s.shared.checkpoint import LoadedModel, load_model
from v3s.shared.labels import LabelSpace
from v3s.shared.runtime import resolve_device
from v3s.shared.spatial import eval_batch
from v3s.shared.store import Store, decode_jpeg
from v3s.shared.temporal import clip_indices, clip_span

from .config import GRADCAM_TARGETS, GradcamConfig
from .plots import gradcam_strip_png, heatmap_overlay, save_gif
from .resolve import describe_model, output_dir, trained_frame_size
from .results import trailer, write_results


def grad_cam(model: nn.Module, x: Tensor, layer: nn.Module, select: Callable[[Any], Tensor]) -> tuple[np.ndarray, Any]:
    """Grad-CAM of one clip.

    Args:
        model: the network (eval mode); its forward output is passed to `select`.
        x: float (1, 3, T, H, W) normalised clip.
        layer: the module whose output (1, C, T', H', W') is explained (the last conv stage).
        select: maps the model output to the scalar target score (e.g. lambda out: out[0, c]).

    Returns:
        (cam float32 (T, H, W) in [0, 1], all zero when the ReLU leaves nothing; the model output, detached).
    """
    if x.ndim != 5 or x.shape[0] != 1:
        raise ValueError(f"x must be one clip (1, 3, T, H, W), got {tuple(x.shape)}")
    saved: dict[str, Tensor] = {}

    def keep(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
        output.retain_grad()
        saved["a"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            out = model(x)
            score = select(out)
            if score.numel() != 1:
                raise ValueError(f"the target must be one score, got shape {tuple(score.shape)}")
            model.zero_grad(set_to_none=True)
            score.backward()
    finally:
        handle.remove()
    a, g = saved["a"].detach(), saved["a"].grad.detach()
    weights = g.mean(dim=(2, 3, 4), keepdim=True)  # (1, C, 1, 1, 1)
    cam = F.relu((weights * a).sum(dim=1, keepdim=True))  # (1, 1, T', H', W')
    cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode="trilinear", align_corners=False)[0, 0]
    peak = cam.max()
    cam = cam / peak if peak > 0 else torch.zeros_like(cam)
    detach = (lambda o: o.detach()) if isinstance(out, Tensor) else (lambda o: tuple(t.detach() for t in o))
    return cam.float().cpu().numpy(), detach(out)


def load_clip_frames(cfg: GradcamConfig, loaded: LoadedModel) -> tuple[np.ndarray, dict[str, Any]]:
    """All frames needed for the clip: uint8 (T, H, W, 3) and a description of where they came from."""
    geometry = loaded.clip_geometry()
    clip_len, step = geometry["clip_len"], geometry["frame_step"]
    span = clip_span(clip_len, step)
    if cfg.video:
        if cfg.store or cfg.key or cfg.index is not None:
            raise ValueError("give either --video FILE or --store/--dataset/--key|--index, not both")
        from v3s.shared.video import decode_video  # ffmpeg is needed only on this path

        path = Path(cfg.video)
        if not path.is_file():
            raise FileNotFoundError(f"video {cfg.video} does not exist")
        h, w = trained_frame_size(loaded, cfg.size)
        try:
            decoded = decode_video(path, h, w)
        except Exception as e:  # DecodeError and ffmpeg failures name the problem
            raise ValueError(f"video {cfg.video} does not decode: {e}") from None
        n = decoded.num_frames
        start = _start(cfg.start, n, span)
        idx = clip_indices(n, start, clip_len, step)
        blobs = [decoded.data[decoded.offsets[i]:decoded.offsets[i + 1]] for i in idx]
        frames = np.stack([decode_jpeg(b) for b in blobs])
        return frames, {"video": str(path), "num_frames": n, "frames": idx.tolist(), "size": [h, w]}
    if not (cfg.store and cfg.dataset) or (cfg.key is None) == (cfg.index is None):
        raise ValueError("give --video FILE, or --store STORE --dataset NAME with exactly one of --key KEY / --index I")
    store = Store(cfg.store)
    videos = store.videos(cfg.dataset)
    if cfg.key is not None:
        key = cfg.key if cfg.key.startswith(f"{cfg.dataset}/") else f"{cfg.dataset}/{cfg.key}"
        found = [v for v in videos if v.key == key]
        if not found:
            raise ValueError(f"video {cfg.key!r} is not an ok video of {cfg.dataset!r} in store {cfg.store}; "
                             f"e.g. {[v.rel_path for v in videos[:3]]}")
        v = found[0]
    else:
        if not 0 <= cfg.index < len(videos):
            raise ValueError(f"--index {cfg.index} is out of range: {cfg.dataset!r} has {len(videos)} ok videos")
        v = videos[cfg.index]
    start = _start(cfg.start, v.num_frames, span)
    idx = clip_indices(v.num_frames, start, clip_len, step)
    return store.read_frames(v.key, idx), {"video": v.key, "class_name": v.class_name, "label": v.label,
                                           "num_frames": v.num_frames, "frames": idx.tolist()}


def _start(start: int | None, n: int, span: int) -> int:
    if start is None:
        return max(0, (n - span) // 2)
    if not 0 <= start < n:
        raise ValueError(f"--start {start} is outside a video of {n} frames")
    return start


def _target(loaded: LoadedModel, target: str) -> tuple[str, int | None]:
    """(head, class id or None for the predicted class) for a --target value and checkpoint kind."""
    finetune = loaded.kind == "v3s-finetune"
    if target == "auto":
        return ("classifier" if finetune else "spatial"), None
    if target in ("spatial", "temporal"):
        if finetune:
            raise ValueError(f"--target {target} needs a pretrain checkpoint (V3S heads); {loaded.path} is finetuned: "
                             "use predicted or a class id")
        return target, None
    if not finetune:
        raise ValueError(f"--target {target} needs a finetune checkpoint; {loaded.path} is a pretrain checkpoint: "
                         "use spatial or temporal")
    if target == "predicted":
        return "classifier", None
    try:
        cls = int(target)
    except ValueError:
        raise ValueError(f"--target {target!r} is not one of {GRADCAM_TARGETS} or a class id") from None
    n = int(loaded.config.n_classes)
    if not 0 <= cls < n:
        raise ValueError(f"--target class id {cls} is out of range: the checkpoint has {n} classes (0..{n - 1})")
    return "classifier", cls


def _class_names(loaded: LoadedModel, head: str) -> list[str]:
    if head == "classifier":
        return list(loaded.config.classes or range(int(loaded.config.n_classes)))
    space = LabelSpace.from_dict(loaded.config.label_space)
    classes = space.spatial_classes if head == "spatial" else space.temporal_classes
    return [c.name for c in classes]


def run_gradcam(cfg: GradcamConfig) -> dict[str, Any]:
    """Grad-CAM of one clip; write gradcam.png (frames over overlays), gradcam.gif, cam.npy and results.json.

    Returns:
        the results dict (also written as results.json).
    """
    if cfg.fps <= 0:
        raise ValueError(f"fps must be > 0, got {cfg.fps}")
    loaded = load_model(cfg.ckpt)
    head, cls = _target(loaded, cfg.target)
    frames, source = load_clip_frames(cfg, loaded)
    crop = loaded.clip_geometry()["clip_size"]
    h, w = frames.shape[1:3]
    if crop > min(h, w):
        raise ValueError(f"the checkpoint's clip size {crop} is larger than the frames ({h}x{w})")
    device = resolve_device(cfg.device)
    model = loaded.model.to(device).eval()
    x = eval_batch(torch.from_numpy(frames)[None].to(device), crop)
    # The same centre crop as eval_batch (center_crop_params rounds the offset the same way).
    y0, x0 = int(round((h - crop) / 2)), int(round((w - crop) / 2))
    shown = frames[:, y0:y0 + crop, x0:x0 + crop]

    def scores(out: Any) -> Tensor:
        if head == "classifier":
            return out[0]
        return out[0 if head == "spatial" else 1][0]

    with torch.no_grad():
        logits = scores(model(x)).float()
    chosen = int(logits.argmax()) if cls is None else cls
    cam, _ = grad_cam(model, x, model.backbone.stages["conv5"], lambda out: scores(out)[chosen])
    names = _class_names(loaded, head)
    probs = torch.softmax(logits, 0)

    name = Path(source["video"]).stem if cfg.video else source["video"].replace("/", "_")
    out = output_dir(cfg, loaded, f"gradcam-{Path(name).stem}")
    overlays = heatmap_overlay(shown, cam)
    title = f"{source['video']}: Grad-CAM of {head} class {names[chosen]!s} (p={float(probs[chosen]):.2f})"
    files = {
        "strip": gradcam_strip_png(shown, overlays, out / "gradcam.png", title=title),
        "gif": save_gif(overlays, out / "gradcam.gif", fps=cfg.fps),
        "cam": out / "cam.npy",
    }
    np.save(files["cam"], cam)
    return write_results(out, {
        "task": "gradcam",
        "model": describe_model(loaded),
        "source": source,
        "head": head,
        "target": {"class_id": chosen, "class_name": str(names[chosen]), "logit": float(logits[chosen]),
                   "probability": float(probs[chosen]), "chosen_by": "predicted" if cls is None else "given"},
        "predicted": {"class_id": int(logits.argmax()), "class_name": str(names[int(logits.argmax())])},
        "layer": "conv5",
        "cam_shape": list(cam.shape),
        "config": cfg.to_dict(),
    }, files)


def format_table(results: dict[str, Any]) -> str:
    """A readable summary of a results dict (what the CLI prints without --json)."""
    t = results["target"]
    lines = [f"gradcam  {results['source']['video']} frames {results['source']['frames'][0]}.."
             f"{results['source']['frames'][-1]}: {results['head']} class {t['class_id']} ({t['class_name']}), "
             f"p={t['probability']:.3f}, {t['chosen_by']}"]
    lines += trailer(results)
    return "\n".join(lines)

"""v3s-eval: the evaluation command line (thin: parse options, build a config, call one library function).

Library errors (ValueError, FileNotFoundError) become click usage errors that name the bad value; results are
printed as a table, or as the results JSON with --json; progress and cache messages go to stderr.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from v3s.shared.atomic import jsonable


def _ints(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 1,5,10,20,50") from None


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise click.BadParameter(f"{value!r} names no layer")
    return names


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        h, w = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HEIGHTxWIDTH, e.g. 128x171") from None
    return h, w


def _log(message: str) -> None:
    click.echo(message, err=True)


def _run(fn: Callable[..., dict[str, Any]], cfg: Any, as_json: bool, table: Callable[[dict], str], **kw: Any) -> None:
    try:
        results = fn(cfg, **kw)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from None
    click.echo(json.dumps(jsonable(results), indent=2) if as_json else table(results))


def _random_options(fn: Callable) -> Callable:
    """The random-init baseline's options (retrieval and aslan): --random with --backbone, --width, --seed, --input-mode."""
    for decorator in reversed([
        click.option("--random", "random_init", is_flag=True, help="A randomly initialised backbone (the baseline row)."),
        click.option("--backbone", default=None, help="With --random: backbone name (r21d, r3d, r3d18, c3d, s3dg)."),
        click.option("--width", type=float, default=None, help="With --random: channel width multiplier [default: 1.0]."),
        click.option("--seed", default=0, show_default=True, help="With --random: initialisation seed."),
        click.option("--input-mode", type=click.Choice(["rgb", "diff"]), default="rgb", show_default=True,
                     help="With --random: network input (frames, or differences of consecutive frames)."),
    ]):
        fn = decorator(fn)
    return fn


def _common(fn: Callable) -> Callable:
    """Options every feature-extracting command shares."""
    for decorator in reversed([
        click.option("--batch-size", default=16, show_default=True, help="Clips per forward pass."),
        click.option("--workers", type=int, default=None, help="DataLoader workers [default: min(8, cores - 1)]."),
        click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N."),
        click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="Results folder [default: CKPT_DIR/eval/<task>-...]."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Feature cache folder [default: CKPT_DIR/features]."),
        click.option("--no-cache", is_flag=True, help="Extract again and do not write the cache."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        click.option("--json", "as_json", is_flag=True, help="Print the results JSON instead of a table."),
    ]):
        fn = decorator(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Evaluate v3s checkpoints: recognition, retrieval, ASLAN similarity, Grad-CAM (see docs/protocols.md)."""


@main.command()
@click.option("--ckpt", required=True, type=click.Path(dir_okay=False), help="A v3s-finetune checkpoint.")
@click.option("--store", required=True, type=click.Path(), help="Frame store holding the dataset.")
@click.option("--dataset", required=True, help="Dataset name in the store (e.g. ucf101).")
@click.option("--split", default="1", show_default=True, help="Split id; its test videos are evaluated.")
@click.option("--clips", default=10, show_default=True, help="Clips per video (linspace centres).")
@click.option("--average", type=click.Choice(["prob", "logit"]), default="prob", show_default=True,
              help="Average softmax probabilities (the paper) or logits (VCOP) over a video's clips.")
@_common
def recognition(ckpt, store, dataset, split, clips, average, batch_size, workers, device, out, cache_dir, no_cache,
                quiet, as_json) -> None:
    """Action recognition: top-1/top-5 clip and video accuracy, per-class accuracy, confusion matrix."""
    from .run_recognition import RecognitionConfig, format_table, run_recognition

    cfg = RecognitionConfig(ckpt=ckpt, store=store, dataset=dataset, split=split, clips=clips, average=average,
                            batch_size=batch_size, workers=workers, device=device, out=out, cache_dir=cache_dir,
                            use_cache=not no_cache, progress=not quiet)
    _run(run_recognition, cfg, as_json, format_table, log=_log)


@main.command()
@click.option("--ckpt", type=click.Path(dir_okay=False), default=None, help="A pretrain or finetune checkpoint.")
@_random_options
@click.option("--store", required=True, type=click.Path(), help="Frame store holding the dataset.")
@click.option("--dataset", required=True, help="Dataset name in the store (e.g. ucf101).")
@click.option("--split", default="1", show_default=True, help="Split id: test videos query its train videos.")
@click.option("--layer", type=click.Choice(["conv5", "pool"]), default="conv5", show_default=True,
              help="conv5 after MaxPool3d(1,2,2), flattened (the peers'), or the pooled vector.")
@click.option("--ks", default="1,5,10,20,50", show_default=True, callback=_ints, help="k values of top-k.")
@click.option("--clips", default=10, show_default=True, help="Clips per video (linspace centres).")
@click.option("--clip-len", type=int, default=None, help="Frames per clip [default: the checkpoint's; random: 16].")
@click.option("--clip-size", type=int, default=None, help="Centre crop side [default: the checkpoint's; random: 112].")
@click.option("--frame-step", type=int, default=None, help="Every k-th frame in a clip [default: the checkpoint's, 1].")
@click.option("--examples", default=8, show_default=True, help="Example queries drawn in examples.png.")
@_common
def retrieval(ckpt, random_init, backbone, width, seed, input_mode, store, dataset, split, layer, ks, clips, clip_len, clip_size,
              frame_step, examples, batch_size, workers, device, out, cache_dir, no_cache, quiet, as_json) -> None:
    """Video retrieval (VCOP/PRP protocol): test videos query train videos, top-k hit rate, examples grid."""
    from .run_retrieval import RetrievalConfig, format_table, run_retrieval

    cfg = RetrievalConfig(store=store, dataset=dataset, split=split, ckpt=ckpt, random=random_init, backbone=backbone,
                          width=width, seed=seed, input_mode=input_mode, layer=layer, ks=ks, clips=clips, clip_len=clip_len,
                          clip_size=clip_size, frame_step=frame_step, examples=examples, batch_size=batch_size, workers=workers,
                          device=device, out=out, cache_dir=cache_dir, use_cache=not no_cache, progress=not quiet)
    _run(run_retrieval, cfg, as_json, format_table, log=_log)


@main.command()
@click.option("--pairs", required=True, type=click.Path(dir_okay=False), help="View2.mat or pairs.csv.")
@click.option("--ckpt", type=click.Path(dir_okay=False), default=None, help="A pretrain or finetune checkpoint.")
@_random_options
@click.option("--features", type=click.Path(dir_okay=False), default=None,
              help="Instead of --ckpt: an .npz of per-video features (one array per layer + 'ids').")
@click.option("--store", type=click.Path(), default=None, help="With --ckpt: frame store holding the ASLAN videos.")
@click.option("--dataset", default="aslan", show_default=True, help="Dataset name in the store.")
@click.option("--layers", default=None, callback=_names,
              help="Comma-separated taps [default: pool3,pool4,pool5; with --features: every array].")
@click.option("--C", "C", type=float, default=1.0, show_default=True, help="Linear SVM C (same for every fold).")
@click.option("--clip-len", type=int, default=None, help="Frames per clip [default: the checkpoint's, 16].")
@click.option("--stride", type=int, default=None, help="Frames between clip starts [default: clip length / 2].")
@click.option("--clip-size", type=int, default=None, help="Centre crop side [default: the checkpoint's; random: 112].")
@click.option("--frame-step", type=int, default=None, help="Every k-th frame in a clip [default: the checkpoint's, 1].")
@_common
def aslan(pairs, ckpt, random_init, backbone, width, seed, input_mode, features, store, dataset, layers, C, clip_len, stride,
          clip_size, frame_step, batch_size, workers, device, out, cache_dir, no_cache, quiet, as_json) -> None:
    """ASLAN same/not-same: 12 measures x 3 layers, fold-wise standardised linear SVM, accuracy +- SE, AUC, ROC."""
    from .run_aslan import AslanConfig, format_table, run_aslan

    cfg = AslanConfig(pairs=pairs, ckpt=ckpt, random=random_init, backbone=backbone, width=width, seed=seed,
                      input_mode=input_mode, features=features, store=store, dataset=dataset, layers=layers, C=C, clip_len=clip_len,
                      stride=stride, clip_size=clip_size, frame_step=frame_step, batch_size=batch_size, workers=workers, device=device,
                      out=out, cache_dir=cache_dir, use_cache=not no_cache, progress=not quiet)
    _run(run_aslan, cfg, as_json, format_table, log=_log)


@main.command()
@click.option("--ckpt", required=True, type=click.Path(dir_okay=False), help="A finetune or pretrain checkpoint.")
@click.option("--video", type=click.Path(dir_okay=False), default=None, help="A video file (decoded with ffmpeg).")
@click.option("--store", type=click.Path(), default=None, help="Or: a frame store ...")
@click.option("--dataset", default=None, help="... its dataset ...")
@click.option("--key", default=None, help="... and a video's rel_path (or store key) ...")
@click.option("--index", type=int, default=None, help="... or its position among the dataset's ok videos.")
@click.option("--target", default="auto", show_default=True,
              help="auto, predicted, a class id (finetune), spatial or temporal (pretrain: that head's prediction).")
@click.option("--start", type=int, default=None, help="First frame of the clip [default: the centred clip].")
@click.option("--size", default=None, callback=_size,
              help="With --video: HEIGHTxWIDTH to resize to [default: the checkpoint's store size, else 128x171].")
@click.option("--fps", default=8.0, show_default=True, help="GIF frame rate.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Results folder [default: CKPT_DIR/eval/gradcam-<video>].")
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON instead of a summary.")
def gradcam(ckpt, video, store, dataset, key, index, target, start, size, fps, device, out, as_json) -> None:
    """Grad-CAM heat maps of one clip on the last conv stage: a PNG strip and a GIF."""
    from .gradcam import GradcamConfig, format_table, run_gradcam

    cfg = GradcamConfig(ckpt=ckpt, video=video, store=store, dataset=dataset, key=key, index=index, target=target,
                        start=start, size=size, device=device, out=out, fps=fps)
    _run(run_gradcam, cfg, as_json, format_table)


def _add_demo() -> None:
    from .demo import main as demo  # the whole pipeline: `v3s-eval demo` = `python -m v3s.evaluate.demo`

    main.add_command(demo, name="demo")


_add_demo()


if __name__ == "__main__":  # python -m v3s.evaluate.cli
    main()

"""v3s-eval: the evaluation command line (thin: options are the config's fields; each command calls one function).

Results are printed as a table, or as the results JSON with --json; progress and cache messages go to stderr.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from v3s.shared.atomic import jsonable
from v3s.shared.cli import config_options, run_or_exit

from .config import (AslanConfig, EmbedConfig, GradcamConfig, KnnConfig, LinearConfig, RecognitionConfig,
                     RetrievalConfig, SpeedinessConfig)


def _log(message: str) -> None:
    click.echo(message, err=True)


def _show(results: dict[str, Any], as_json: bool, table: Callable[[dict], str]) -> None:
    click.echo(json.dumps(jsonable(results), indent=2) if as_json else table(results))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Evaluate v3s checkpoints: recognition, retrieval, kNN and linear classification, ASLAN similarity, Grad-CAM,
    speediness, embeddings (see docs/protocols.md)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Every rank would evaluate the whole split on its own device and write the same files.
        raise click.UsageError("v3s-eval runs as one process on one device; run it without torchrun "
                               "(choose the GPU with --device cuda:N)")


@main.command()
@config_options(RecognitionConfig)
def recognition(**options: Any) -> None:
    """Action recognition: top-1/top-5 clip and video accuracy, per-class accuracy, confusion matrix."""
    from .recognition import format_table, run_recognition

    cfg = run_or_exit(RecognitionConfig, **options)
    _show(run_or_exit(run_recognition, cfg, log=_log), cfg.json, format_table)


@main.command()
@config_options(RetrievalConfig)
def retrieval(**options: Any) -> None:
    """Video retrieval (VCOP/PRP protocol): test videos query train videos, top-k hit rate, examples grid."""
    from .retrieval import format_table, run_retrieval

    cfg = run_or_exit(RetrievalConfig, **options)
    _show(run_or_exit(run_retrieval, cfg, log=_log), cfg.json, format_table)


@main.command()
@config_options(KnnConfig)
def knn(**options: Any) -> None:
    """Weighted kNN classification on frozen features (DINO): test videos vote among train videos, top-1/top-5."""
    from .knn import format_table, run_knn

    cfg = run_or_exit(KnnConfig, **options)
    _show(run_or_exit(run_knn, cfg, log=_log), cfg.json, format_table)


@main.command()
@config_options(LinearConfig)
def linear(**options: Any) -> None:
    """Linear classifier on frozen features: logistic regression, C by group-aware cross-validation, top-1/top-5."""
    from .linear import format_table, run_linear

    cfg = run_or_exit(LinearConfig, **options)
    _show(run_or_exit(run_linear, cfg, log=_log), cfg.json, format_table)


@main.command()
@config_options(EmbedConfig)
def embed(**options: Any) -> None:
    """One feature per video (a store's dataset or a folder of videos) to an .npz: ids, labels, features."""
    from .embed import format_table, run_embed

    cfg = run_or_exit(EmbedConfig, **options)
    results = run_or_exit(run_embed, cfg, log=_log)
    _show(results, cfg.json, format_table)
    if results["failed"]:  # the others are written; the exit status says that not every video is in the file
        n, names = len(results["failed"]), ", ".join(f["video"] for f in results["failed"])
        click.echo(f"Error: {n} video{'s' if n > 1 else ''} did not decode and {'are' if n > 1 else 'is'} not in "
                   f"{results['out']}: {names}", err=True)
        sys.exit(1)


@main.command()
@config_options(AslanConfig)
def aslan(**options: Any) -> None:
    """ASLAN same/not-same: 12 measures x 3 layers, fold-wise standardised linear SVM, accuracy +- SE, AUC, ROC."""
    from .aslan import format_table, run_aslan

    cfg = run_or_exit(AslanConfig, **options)
    _show(run_or_exit(run_aslan, cfg, log=_log), cfg.json, format_table)


@main.command()
@config_options(GradcamConfig)
def gradcam(**options: Any) -> None:
    """Grad-CAM heat maps of one clip on the last conv stage: a PNG strip and a GIF."""
    from .gradcam import format_table, run_gradcam

    cfg = run_or_exit(GradcamConfig, **options)
    _show(run_or_exit(run_gradcam, cfg), cfg.json, format_table)


@main.command()
@config_options(SpeedinessConfig)
def speediness(**options: Any) -> None:
    """Motion speediness of one video: the temporal head's expected speed and P(speed > 1) per clip (paper Fig 4)."""
    from .speediness import format_table, run_speediness

    cfg = run_or_exit(SpeedinessConfig, **options)
    _show(run_or_exit(run_speediness, cfg, log=_log), cfg.json, format_table)


if __name__ == "__main__":  # python -m v3s.evaluate.cli
    main()

"""v3s-eval: the evaluation command line (thin: options are the config's fields; each command calls one function).

Results are printed as a table, or as the results JSON with --json; progress and cache messages go to stderr.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click

from v3s.shared.atomic import jsonable
from v3s.shared.cli import config_options, run_or_exit

from .config import AslanConfig, GradcamConfig, RecognitionConfig, RetrievalConfig, SpeedinessConfig


def _log(message: str) -> None:
    click.echo(message, err=True)


def _show(results: dict[str, Any], as_json: bool, table: Callable[[dict], str]) -> None:
    click.echo(json.dumps(jsonable(results), indent=2) if as_json else table(results))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Evaluate v3s checkpoints: recognition, retrieval, ASLAN similarity, Grad-CAM, speediness (see
    docs/protocols.md)."""
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

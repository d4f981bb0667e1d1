"""v3s-train: the training command line (thin: options are the config's fields; each command calls one function)."""
from __future__ import annotations

from typing import Any

import click

from v3s.shared.cli import config_options, is_main_rank, run_or_exit
from v3s.shared.config import FinetuneConfig, PretrainConfig


def _report(result: Any) -> None:
    if is_main_rank():  # under torchrun, one summary line (rank 0's)
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
        click.echo(f"{result.out}: step {result.step}, validation {metrics}, best {result.best:.4f}")


def _log(line: str) -> None:
    click.echo(line, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """V3S pretraining and supervised finetuning on a frame store (see docs/training.md)."""


@main.command()
@config_options(PretrainConfig)
def pretrain(**options: Any) -> None:
    """Pretrain a backbone on V3S (paper section 4.1.2 defaults); writes --out/{last,best}.pt."""
    from .pretrain import pretrain as run

    _report(run_or_exit(lambda: run(PretrainConfig(**options), log=_log)))


@main.command()
@config_options(FinetuneConfig)
def finetune(**options: Any) -> None:
    """Finetune for action recognition from --init RUN_DIR/best.pt or --scratch (paper section 4.3 defaults)."""
    from .finetune import finetune as run

    _report(run_or_exit(lambda: run(FinetuneConfig(**options), log=_log)))


if __name__ == "__main__":  # python -m v3s.train.cli, torchrun -m v3s.train.cli
    main()

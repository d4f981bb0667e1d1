"""v3s-train: the training command line (thin: options are the config's fields; each command calls one function).

Every option is generated from a field of PretrainConfig / FinetuneConfig (same name, dashes for underscores,
the field's help text and default), so the command line and the config saved with a run cannot drift apart.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import click

from v3s.shared.config import FinetuneConfig, PretrainConfig

_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _click_type(annotation: str) -> type:
    # Annotations are strings (from __future__ import annotations): "int", "Optional[int]", "bool", ...
    base = annotation.replace("Optional[", "").rstrip("]")
    return _TYPES[base]


def config_options(cls: type) -> Callable:
    """Decorate a click command with one option per command-line field of `cls`."""
    hints = {f.name: f.type for f in dataclasses.fields(cls)}

    def decorate(fn: Callable) -> Callable:
        for f in reversed(dataclasses.fields(cls)):
            if not f.metadata.get("cli", True):
                continue
            name = "--" + f.name.replace("_", "-")
            typ = _click_type(hints[f.name])
            if typ is bool:
                fn = click.option(name, is_flag=True, default=f.default, help=f.metadata["help"])(fn)
                continue
            choices = f.metadata.get("choices")
            required = f.metadata.get("required", False)
            fn = click.option(name, type=click.Choice(choices) if choices else typ, required=required,
                              default=None if required else f.default, show_default=not required and f.default is not None,
                              help=f.metadata["help"])(fn)
        return fn

    return decorate


def _run(fn: Callable[[Any], Any], cls: type, options: dict) -> None:
    try:
        config = cls(**options)
        result = fn(config)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from None
    if int(os.environ.get("RANK", "0")):  # under torchrun, one summary line (rank 0's)
        return
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    click.echo(f"{result.out}: step {result.step}, validation {metrics}, best {result.best:.4f}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """V3S pretraining and supervised finetuning on a frame store (see docs/training.md)."""


@main.command()
@config_options(PretrainConfig)
def pretrain(**options: Any) -> None:
    """Pretrain a backbone on V3S (paper section 4.1.2 defaults); writes --out/{last,best}.pt."""
    from .pretrain import pretrain as run

    _run(run, PretrainConfig, options)


@main.command()
@config_options(FinetuneConfig)
def finetune(**options: Any) -> None:
    """Finetune for action recognition from --init RUN_DIR/best.pt or --scratch (paper section 4.3 defaults)."""
    from .finetune import finetune as run

    _run(run, FinetuneConfig, options)


if __name__ == "__main__":  # python -m v3s.train.cli, torchrun -m v3s.train.cli
    main()

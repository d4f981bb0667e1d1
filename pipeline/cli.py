"""v3s-eval as installed: the evaluation commands plus `demo`, the main job, which runs every stage.

The evaluation stage cannot import the main job (stages import downward only), so the installed command is
composed here, the one place allowed to see every stage; the demo's own modules load only when it runs.
"""
from __future__ import annotations

from typing import Any

import click

from v3s.evaluate.cli import main
from v3s.shared.cli import config_options, run_or_exit

from .config import DemoConfig


@main.command()
@config_options(DemoConfig)
def demo(**options: Any) -> None:
    """Run the whole V3S pipeline on the embedded synthetic set and write REPORT.md (docs/demo.md)."""
    from .demo import run_demo

    run_or_exit(lambda: run_demo(DemoConfig(**options), log=click.echo))


if __name__ == "__main__":
    main()

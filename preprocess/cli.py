"""v3s-prep: the preprocessing command line (thin: options are the config's fields; each command calls one function).

What each command chose (a dataset inferred from ROOT, the workspace's store) and its progress go to stderr; its
summary to stdout.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Optional

import click

from v3s.shared import workspace
from v3s.shared.cli import config_options, run_or_exit
from v3s.shared.config import ConfigBase, option

from .config import ExtractConfig
from .synth.config import SynthConfig


@dataclass(frozen=True, kw_only=True)
class StoreReport(ConfigBase):
    """`v3s-prep info` and `verify`: a store, the workspace's by default."""

    store: Optional[str] = option(None, "The store folder [default: the workspace's v3s-store].", path="dir",
                                  argument=True)

    def resolved(self) -> str:
        return self.store or str(workspace.default_store())


@dataclass(frozen=True, kw_only=True)
class InfoOptions(StoreReport):
    json: bool = option(False, "One JSON object for scripts.")
    failures: bool = option(False, "Also list videos that are not ok, with reasons.")


@dataclass(frozen=True, kw_only=True)
class SynthJob(SynthConfig):
    """`v3s-prep synth`: the dataset's options, where to write it and how."""

    out: str = option(help="The folder to write the dataset in.", path="out-dir", argument=True)
    jobs: Optional[int] = option(None, "Worker processes [default: every available core].")
    contact_sheet: Optional[str] = option(None, "Also write a PNG with frames of the first clip of each class.")
    quiet: bool = option(False, "No progress output.")

    def dataset(self) -> SynthConfig:
        """The options that define the dataset (what the folder records and a rerun compares)."""
        return SynthConfig(**{name: getattr(self, name) for name in SynthConfig.__dataclass_fields__})


def _log(line: str) -> None:
    click.echo(line, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Decode videos into HDF5 frame stores, inspect and verify stores, generate the synthetic default set."""


@main.command()
@config_options(ExtractConfig)
def extract(**options: Any) -> None:
    """Decode every video of ROOT into the frame store (resumable: rerun the same command after a crash)."""
    from .extract import ExtractInterrupted, run_extract

    try:
        summary = run_or_exit(lambda: run_extract(ExtractConfig(**options), log=_log))
    except ExtractInterrupted as e:
        for line in e.summary.lines():
            click.echo(line, err=True)
        sys.exit(130)
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        sys.exit(1)


@main.command()
@config_options(InfoOptions)
def info(**options: Any) -> None:
    """Counts per dataset: videos ok / failed / missing / too short, frames, bytes per frame, size, splits."""
    from .store_report import format_info, summarize_store

    opts = InfoOptions(**options)
    report = run_or_exit(summarize_store, opts.resolved(), failures=opts.failures)
    click.echo(json.dumps(report, indent=None, sort_keys=True) if opts.json else format_info(report))


@main.command()
@config_options(StoreReport)
def verify(**options: Any) -> None:
    """Decode every stored frame and check it against the store's records; exit 1 naming damaged videos."""
    from .store_report import verified_counts, verify_store

    store = StoreReport(**options).resolved()
    problems = run_or_exit(verify_store, store, quiet=False)
    for key, what in problems:
        click.echo(f"damaged: {key}: {what}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{store}: ok, every frame decodes ({verified_counts(store)})")


@main.command()
@config_options(SynthJob)
def synth(**options: Any) -> None:
    """Generate real encoded videos whose classes differ only by motion, in a UCF101/HMDB51/ASLAN layout in OUT."""
    import time

    from .synth.build import generate, write_contact_sheet

    job = run_or_exit(SynthJob, **options)
    start = time.perf_counter()
    result = run_or_exit(generate, job.dataset(), job.out, jobs=job.jobs, quiet=job.quiet)
    took = time.perf_counter() - start
    if result.reused:
        click.echo(f"{job.out}: up to date ({result.videos} videos, {len(result.classes)} classes)")
    else:
        click.echo(f"{job.out}: {result.videos} videos, {len(result.classes)} classes, {result.frames_written} frames "
                   f"written in {took:.1f} s")
    if job.contact_sheet:
        click.echo(f"contact sheet: {run_or_exit(write_contact_sheet, job.out, job.dataset(), job.contact_sheet)}")


if __name__ == "__main__":  # python -m v3s.preprocess.cli
    main()

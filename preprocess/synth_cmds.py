"""`v3s-prep synth`: generate the embedded synthetic dataset (thin: parse, build a SynthConfig, call generate)."""
from __future__ import annotations

import time

import click

from .synth import CLASS_SETS, CODECS, LAYOUTS, SynthConfig, generate, write_contact_sheet


def _parse_size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HEIGHTxWIDTH, e.g. 128x172") from None
    return h, w


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--layout", type=click.Choice(LAYOUTS), default="ucf101", show_default=True,
              help="Folder and split-file layout to write (aslan: never-seen motion classes and pairs.csv).")
@click.option("--class-set", type=click.Choice(tuple(CLASS_SETS)), default="directions", show_default=True,
              help="ucf101/hmdb51: classes that differ by direction, or by kind of motion (direction random).")
@click.option("--classes", type=int, default=None,
              help="Motion classes [default: 10; 20 for aslan].")
@click.option("--videos-per-class", type=int, default=None, help="Clips per class [default: 40; 12 for aslan].")
@click.option("--size", default="128x172", show_default=True, callback=_parse_size,
              help="Frame HEIGHTxWIDTH of the encoded videos; both even (yuv420p).")
@click.option("--seed", type=int, default=0, show_default=True, help="Dataset seed: same seed, same frames.")
@click.option("--jobs", type=int, default=None, help="Worker processes [default: every available core].")
@click.option("--codec", type=click.Choice(tuple(CODECS)), default="xvid", show_default=True,
              help="xvid: .avi like UCF101; h264: .mp4.")
@click.option("--pairs-per-fold", type=int, default=40, show_default=True,
              help="aslan only: pairs per fold, half same, half not-same.")
@click.option("--contact-sheet", "contact_sheet", type=click.Path(dir_okay=False), default=None,
              help="Also write a PNG with frames of the first clip of each class.")
def synth(out: str, layout: str, class_set: str, classes: int | None, videos_per_class: int | None, size: tuple[int, int],
          seed: int, jobs: int | None, codec: str, pairs_per_fold: int, contact_sheet: str | None) -> None:
    """Generate real encoded videos whose classes differ only by motion, in a UCF101/HMDB51/ASLAN layout in OUT."""
    aslan = layout == "aslan"
    try:
        config = SynthConfig(layout=layout, classes=(20 if aslan else 10) if classes is None else classes,
                             videos_per_class=(12 if aslan else 40) if videos_per_class is None else videos_per_class,
                             size=size, seed=seed,
                             codec=codec, pairs_per_fold=pairs_per_fold, class_set=class_set)
        start = time.perf_counter()
        result = generate(config, out, jobs=jobs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    took = time.perf_counter() - start
    if result.reused:
        click.echo(f"{out}: up to date ({result.videos} videos, {len(result.classes)} classes)")
    else:
        click.echo(f"{out}: {result.videos} videos, {len(result.classes)} classes, {result.frames_written} frames "
                   f"written in {took:.1f} s")
    if contact_sheet:
        click.echo(f"contact sheet: {write_contact_sheet(out, config, contact_sheet)}")

"""Click commands `extract`, `info`, `verify` (thin: parse options, call one library function)."""
from __future__ import annotations

import json
import sys

import click

from ..data_manifest import DATASETS


def _size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HEIGHTxWIDTH (e.g. 128x171)") from None
    return h, w


@click.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--dataset", required=True, type=click.Choice(DATASETS), help="Dataset layout of ROOT.")
@click.option("--out", "out", required=True, type=click.Path(), help="Store directory (created; other datasets kept).")
@click.option("--splits", "splits_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of official split files (default: in ROOT, else the bundled copies).")
@click.option("--size", default="128x171", show_default=True, callback=_size, help="Stored frame HEIGHTxWIDTH.")
@click.option("--jobs", default=-1, show_default=True, help="Parallel workers (-1: all cores).")
@click.option("--backend", type=click.Choice(["loky", "dask"]), default="loky", show_default=True)
@click.option("--scheduler", default=None, help="Dask scheduler address (with --backend dask).")
@click.option("--min-frames", default=16, show_default=True, help="Fewer decoded frames: recorded as too_short.")
@click.option("--quality", default=2, show_default=True, help="JPEG quality as ffmpeg -q:v (2 best .. 31).")
@click.option("--quiet", is_flag=True, help="No progress output.")
def extract(root, dataset, out, splits_dir, size, jobs, backend, scheduler, min_frames, quality, quiet) -> None:
    """Decode every video of ROOT into the frame store OUT (resumable: rerun the same command after a crash)."""
    from .extract import ExtractConfig, ExtractInterrupted, run_extract

    try:
        cfg = ExtractConfig(root=root, dataset=dataset, out=out, splits_dir=splits_dir, height=size[0], width=size[1],
                            jobs=jobs, backend=backend, scheduler=scheduler, min_frames=min_frames, quality=quality,
                            quiet=quiet)
        summary = run_extract(cfg)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        raise click.ClickException(str(e)) from None
    except ExtractInterrupted as e:
        for line in e.summary.lines():
            click.echo(line, err=True)
        sys.exit(130)
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        sys.exit(1)


@click.command()
@click.argument("store", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="One JSON object for scripts.")
@click.option("--failures", is_flag=True, help="Also list videos that are not ok, with reasons.")
def info(store, as_json, failures) -> None:
    """Counts per dataset: videos ok / failed / missing / too short, frames, bytes per frame, size, splits."""
    from ..shared.store import Store
    from .store_report import summarize_store

    try:
        report = summarize_store(store)
        if failures:
            with Store(store) as s:
                for name in s.datasets:
                    report["datasets"][name]["failures"] = s.failures(name)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(report, indent=None, sort_keys=True))
        return
    click.echo(f"store {report['store']} (schema {report['schema_version']})")
    for name, d in report["datasets"].items():
        v = d["videos"]
        st = d["settings"]
        click.echo(f"{name}: ok {v['ok']}, failed {v['failed']}, missing {v['missing']}, too short {v['too_short']}; "
                   f"{d['classes']} classes; {d['frames']} frames at {st.get('height')}x{st.get('width')}, "
                   f"{d['bytes_per_frame'] / 1024:.2f} KiB/frame, {d['size_on_disk'] / 2**20:.1f} MiB on disk "
                   f"in {d['shards']} shards")
        for sid, roles in d["splits"].items():
            click.echo(f"  split {sid}: " + (", ".join(f"{r} {n}" for r, n in sorted(roles.items())) or "no ok videos"))
        for f in d.get("failures", []):
            click.echo(f"  {f['status']}: {f['rel_path']}: {f['reason']}")


@click.command()
@click.argument("store", type=click.Path())
def verify(store) -> None:
    """Decode every stored frame and check it against the manifest; exit 1 naming damaged videos."""
    from ..shared.store import Store
    from .store_report import verify_store

    try:
        problems = verify_store(store, quiet=False)
    except (ValueError, FileNotFoundError) as e:
        click.echo(f"damaged: {e}", err=True)
        sys.exit(1)
    for key, what in problems:
        click.echo(f"damaged: {key}: {what}", err=True)
    if problems:
        sys.exit(1)
    opened = Store(store)
    counts = [f"{name} {len(vs)} videos, {sum(v.num_frames for v in vs)} frames"
              for name in opened.datasets for vs in [opened.videos(name)]]
    click.echo(f"{store}: ok, every frame decodes ({'; '.join(counts)})")

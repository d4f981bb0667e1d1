"""PLACEHOLDER (owned by the extract work): click commands extract, info, verify."""
import click


@click.command()
def extract() -> None:
    raise click.ClickException("extract: not built yet")


@click.command()
def info() -> None:
    raise click.ClickException("info: not built yet")


@click.command()
def verify() -> None:
    raise click.ClickException("verify: not built yet")

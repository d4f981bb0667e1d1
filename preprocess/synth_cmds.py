"""PLACEHOLDER (owned by the synth work): click command synth."""
import click


@click.command()
def synth() -> None:
    raise click.ClickException("synth: not built yet")

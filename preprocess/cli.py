"""v3s-prep: the preprocessing command line (thin: parse, build a config, call one library function)."""
from __future__ import annotations

import click

from .extract_cmds import extract, info, verify
from .synth_cmds import synth


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Decode videos into HDF5 frame stores, inspect and verify stores, generate the synthetic default set."""


main.add_command(extract)
main.add_command(info)
main.add_command(verify)
main.add_command(synth)


if __name__ == "__main__":  # python -m v3s.preprocess.cli
    main()

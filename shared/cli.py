"""What every command line of the project does the same way: options generated from a config dataclass, and one
place where a user's mistake becomes a one-line message instead of a traceback.

Only the CLI modules (preprocess/cli.py, train/cli.py, evaluate/cli.py, pipeline/cli.py) import this; library code
never imports click.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
import typing
from typing import Any, Callable

import click

from .config import PARSERS, format_default

_TYPES = {str: click.STRING, int: click.INT, float: click.FLOAT}


def _base_type(hint: Any) -> Any:
    """int for Optional[int], tuple for tuple[int, ...], and so on."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        return _base_type(args[0])
    return typing.get_origin(hint) or hint


def _ordered_fields(cls: type) -> list[dataclasses.Field]:
    """The config's own fields first (what the command is about), then those of each option group it inherits, in
    the order the class lists its groups."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}
    names = [n for c in cls.__mro__ for n in c.__dict__.get("__annotations__", {}) if n in fields]
    return [fields[n] for n in dict.fromkeys(names)]


def _callback(parse: str) -> Callable:
    """Parse an option's text; a usage error names the option and the value.

    (Paths are checked where the library uses them, with `v3s.shared.paths.check_path`, so that the Python API
    gets the same messages.)
    """
    def convert(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        try:
            return PARSERS[parse](value)
        except ValueError as e:
            raise click.UsageError(f"{param.opts[0]} {value!r} {e}", ctx=ctx) from None
    return convert


class FieldOption(click.Option):
    """An option generated from a config field; `field` keeps the field (its path kind and bounds), for tests and
    tools that walk the commands."""

    def __init__(self, *args: Any, field: dataclasses.Field, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.field = field


class FieldArgument(click.Argument):
    """A positional argument generated from a config field (see FieldOption)."""

    def __init__(self, *args: Any, field: dataclasses.Field, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.field = field


def config_options(cls: type) -> Callable:
    """Decorate a click command with one option (or argument) per command-line field of the dataclass `cls`."""
    hints = typing.get_type_hints(cls)

    def decorate(fn: Callable) -> Callable:
        for f in reversed(_ordered_fields(cls)):
            meta, base = f.metadata, _base_type(hints[f.name])
            required = f.default is dataclasses.MISSING
            default = None if required else f.default
            checks = {"callback": _callback(meta["parse"])} if meta.get("parse") else {}
            if meta.get("argument"):
                kwargs = {} if required else {"default": default}
                fn = click.argument(f.name, required=required, type=_TYPES.get(base, click.STRING), **kwargs,
                                    **checks, cls=FieldArgument, field=f)(fn)
                continue
            decls = [meta.get("flag") or "--" + f.name.replace("_", "-"), f.name]
            if base is bool:
                fn = click.option(*decls, is_flag=True, default=bool(default), help=meta["help"], cls=FieldOption,
                                  field=f)(fn)
                continue
            kwargs: dict[str, Any] = {} if required else {"default": format_default(default, meta.get("parse"))}
            if meta.get("parse"):
                kwargs["type"] = click.STRING
            else:
                kwargs["type"] = click.Choice(meta["choices"]) if meta.get("choices") else _TYPES.get(base, click.STRING)
            kwargs.update(checks)
            # A required option gets no default at all: with default=None some Click releases let it through as None.
            fn = click.option(*decls, required=required, show_default=default is not None and not required,
                              help=meta["help"], cls=FieldOption, field=f, **kwargs)(fn)
        return fn

    return decorate


def user_error_message(e: BaseException) -> str | None:
    """The one-line message for an exception a user's input caused, or None for a bug (which keeps its traceback).

    ValueError and the OSErrors a path can cause (missing, a file where a folder is expected and the reverse, no
    permission, already exists) are the user's; an exception re-raised from a DataLoader worker keeps only the
    worker's own message (torch adds the worker's traceback to it).
    """
    if isinstance(e, ValueError):
        text = str(e)
    elif isinstance(e, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)):
        what = {FileNotFoundError: "does not exist", NotADirectoryError: "is not a folder",
                IsADirectoryError: "is a folder, not a file", PermissionError: "cannot be written or read (permission denied)",
                FileExistsError: "already exists"}[type(e)]
        text = f"{e.filename} {what}" if e.filename else str(e)
    else:
        return None
    m = re.search(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback.*\n(\w+(?:Error|Exception)): (.*)$",
                  text, re.S)
    if m:
        text = m.group(2).strip()
    return text.strip() or type(e).__name__


def run_or_exit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call fn; a user's mistake ends the command with "Error: <message>" and exit status 2, Ctrl-C with status 130."""
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt as e:
        if type(e) is not KeyboardInterrupt:  # a command's own interrupt, carrying what it kept: it says so
            raise
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as e:
        message = user_error_message(e)
        if message is None:
            raise
        raise click.UsageError(message) from None


def is_main_rank() -> bool:
    """False on the non-zero ranks of a torchrun job (which print nothing)."""
    return not int(os.environ.get("RANK", "0"))

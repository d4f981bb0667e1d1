"""How every evaluation ends: results.json beside the files it made, and the lines the command prints after its
table (notes, then every file)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from v3s.shared.atomic import write_json


def write_results(out: Path, results: dict[str, Any], files: dict[str, Path]) -> dict[str, Any]:
    """Add `files` (results.json first) and write `results` to OUT/results.json; return the results.

    Args:
        out: the results folder (created).
        results: the evaluation's figures and settings (strict JSON after `jsonable`).
        files: name -> path of every other file the evaluation wrote there.
    """
    results = {**results, "files": {"results": out / "results.json", **files}}
    write_json(out / "results.json", results)
    return results


def trailer(results: dict[str, Any]) -> list[str]:
    """The note and file lines printed under a results table."""
    return [f"  note: {n}" for n in results.get("notes", [])] + \
           [f"  {name}: {path}" for name, path in results["files"].items()]

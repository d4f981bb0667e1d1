"""The command-line contract: every subcommand of v3s-prep, v3s-train and v3s-eval meets a user's mistake with a
non-zero exit, a message naming the option or the path, no traceback, and nothing that existed changed.

The walk covers every command of the three Click trees (a new command is tested without a line here), and every
option generated from a config field: the field says whether the option is a path (an existing file or folder, or
a folder to write in) and its smallest valid value. Tries, per command: no arguments (in an empty workspace);
a nonexistent path for every path option; a file where a folder is expected and the reverse; a word where a
number is expected; a value below each option's minimum; a read-only output folder (in a child process that has
lost CAP_DAC_OVERRIDE, since root writes through permission bits). Cheap paths only: nothing trains.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from v3s.pipeline.cli import main as eval_main
from v3s.preprocess.cli import main as prep_main
from v3s.train.cli import main as train_main

GROUPS = {"v3s-prep": prep_main, "v3s-train": train_main, "v3s-eval": eval_main}
RUNS_WITHOUT_ARGUMENTS = {("v3s-eval", "demo")}  # the main job: no arguments is its normal use
BIN = Path(sys.executable).parent


def commands() -> list[tuple[str, str, click.Command]]:
    return [(group, name, cmd) for group, g in GROUPS.items() for name, cmd in sorted(g.commands.items())]


def field(param: click.Parameter):
    return getattr(param, "field", None)


def test_every_command_is_generated_from_a_config():
    """The walk below learns each option's kind from its config field: no option may lack one."""
    bare = [f"{g} {n} {p.name}" for g, n, c in commands() for p in c.params
            if field(p) is None and p.name != "help"]
    assert not bare, bare


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_ucf_store):
    """Valid inputs for every command, so that each try fails on the one thing it breaks."""
    from v3s.evaluate.aslan import save_video_features
    from v3s.shared.checkpoint import FORMAT_VERSION, build_network, save_checkpoint
    from v3s.shared.config import FinetuneConfig, PretrainConfig
    from v3s.shared.labels import LabelSpace

    root = tmp_path_factory.mktemp("contract")
    store = Path(tiny_ucf_store)
    ckpts = {}
    for kind, cfg in (("pretrain", PretrainConfig(store=str(store), dataset="ucf101", out=str(root / "pt"), width=0.125,
                                                  clip_len=8, clip_size=32, label_space=LabelSpace().to_dict())),
                      ("finetune", FinetuneConfig(store=str(store), dataset="ucf101", out=str(root / "ft"), width=0.125,
                                                  backbone="r21d", input_mode="rgb", scratch=True, clip_len=8,
                                                  clip_size=32, n_classes=4, classes=("a", "b", "c", "d")))):
        (root / kind).mkdir()
        path = root / kind / "best.pt"
        save_checkpoint({"kind": f"v3s-{kind}", "format_version": FORMAT_VERSION, "config": cfg.to_dict(),
                         "model": build_network(cfg).state_dict(), "step": 0}, path)
        ckpts[kind] = path
    a_file = root / "a_file.txt"
    a_file.write_text("not a folder\n")
    pairs = root / "pairs.csv"
    pairs.write_text("fold,first,second,same,first_action,second_action\n1,0001,0002,1,1,1\n")
    raw = store.parent / "raw"
    tiny = ["--width", "0.125", "--clip-len", "8", "--clip-size", "32"]
    base = {
        ("v3s-prep", "extract"): [str(raw), "--dataset", "ucf101", "--out", str(root / "store-out"), "--jobs", "1",
                                  "--quiet", "--size", "48x64"],
        ("v3s-prep", "synth"): [str(root / "synth-out"), "--classes", "2", "--videos-per-class", "3", "--size",
                                "32x32", "--jobs", "1", "--quiet"],
        ("v3s-prep", "info"): [str(store)],
        ("v3s-prep", "verify"): [str(store)],
        ("v3s-train", "pretrain"): ["--store", str(store), "--dataset", "ucf101", "--out", str(root / "run-pt"),
                                    "--max-steps", "1", "--workers", "0", *tiny],
        ("v3s-train", "finetune"): ["--store", str(store), "--dataset", "ucf101", "--out", str(root / "run-ft"),
                                    "--init", str(ckpts["pretrain"]), "--max-steps", "1", "--workers", "0", "--clip-len",
                                    "8", "--clip-size", "32"],
        ("v3s-eval", "recognition"): ["--ckpt", str(ckpts["finetune"]), "--store", str(store), "--dataset", "ucf101",
                                      "--workers", "0", "--quiet", "--out", str(root / "eval-out")],
        ("v3s-eval", "aslan"): ["--random", "--backbone", "r21d", *tiny, "--store", str(store), "--dataset",
                                "ucf101", "--pairs", str(pairs), "--workers", "0", "--quiet", "--out",
                                str(root / "eval-out")],
        ("v3s-eval", "gradcam"): ["--ckpt", str(ckpts["finetune"]), "--store", str(store), "--dataset", "ucf101",
                                  "--index", "0", "--out", str(root / "eval-out")],
        ("v3s-eval", "speediness"): ["--ckpt", str(ckpts["pretrain"]), "--store", str(store), "--dataset", "ucf101",
                                     "--index", "0", "--out", str(root / "eval-out")],
        ("v3s-eval", "demo"): ["--out", str(root / "demo-out"), "--pretrain-steps", "1", "--finetune-steps", "1"],
    }
    model = ["--random", "--backbone", "r21d", *tiny, "--store", str(store), "--dataset", "ucf101", "--workers", "0",
             "--quiet", "--out", str(root / "eval-out")]
    base[("v3s-eval", "embed")] = with_flag(model, "--out", str(root / "embed-out" / "feats.npz"))
    for group, name, cmd in commands():
        base.setdefault((group, name), model if "random" in {p.name for p in cmd.params} else [])
    # ASLAN from a features file: its own valid arguments (the tries of --features use them).
    save_video_features(root / "feats.npz", {"pool": np.ones((2, 4), np.float32)}, ["0001", "0002"])
    features = ["--features", str(root / "feats.npz"), "--pairs", str(pairs), "--out", str(root / "eval-out")]
    return {"root": root, "store": store, "file": a_file, "base": base, "aslan-features": features}


def with_flag(args: list[str], flag: str, value: str) -> list[str]:
    i = args.index(flag)
    return [*args[:i + 1], value, *args[i + 2:]]


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file below the roots: what a failed command must leave as it was."""
    out = {}
    for r in roots:
        for p in Path(r).rglob("*"):
            if p.is_file():
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


# Options that exclude others: setting the key drops these (flag, takes a value) from the valid arguments first.
EXCLUDES = {"--ckpt": (("--random", False),), "--video": (("--store", True), ("--dataset", True), ("--index", True)),
            "--root": (("--store", True), ("--dataset", True))}


def without(args: list[str], flag: str, takes_value: bool) -> list[str]:
    if flag not in args:
        return args
    i = args.index(flag)
    return args[:i] + args[i + 1 + takes_value:]


def with_option(args: list[str], param: click.Parameter, value: str) -> list[str]:
    """`args` with the option set to `value` (replacing a value it already has; an argument replaces the first)."""
    for flag, takes_value in EXCLUDES.get(param.opts[0] if param.opts else "", ()):
        args = without(args, flag, takes_value)
    if isinstance(param, click.Argument):
        return [value, *args[1:]] if args and not args[0].startswith("-") else [value, *args]
    flag = param.opts[0]
    return with_flag(args, flag, value) if flag in args else [*args, flag, value]


def tries(world) -> list[tuple[str, str, list[str], str, str]]:
    """(group, command, argv, what the message must name, what the try is) for every mistake of every command."""
    out = []
    for group, name, cmd in commands():
        for p in cmd.params:
            f = field(p)
            if f is None:
                continue
            opt = p.opts[0] if isinstance(p, click.Option) else p.name
            base = world["base"][(group, name)]
            if (group, name) == ("v3s-eval", "aslan") and opt == "--features":
                base = world["aslan-features"]
            kind, low = f.metadata.get("path"), f.metadata.get("min")
            if kind in ("file", "dir"):
                missing = str(world["root"] / "no-such" / f"{p.name}-missing")
                out.append((group, name, with_option(base, p, missing), missing, f"{opt} missing"))
            if kind in ("dir", "out-dir"):
                out.append((group, name, with_option(base, p, str(world["file"])), str(world["file"]), f"{opt} a file"))
            if kind == "file":
                out.append((group, name, with_option(base, p, str(world["root"])), str(world["root"]), f"{opt} a folder"))
            if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)):
                out.append((group, name, with_option(base, p, "abc"), opt, f"{opt} not a number"))
            if low is not None:
                for bad in sorted({low - 1, 0, -1} - set(range(low, low + 1000))):
                    if bad < low:
                        out.append((group, name, with_option(base, p, str(bad)), opt, f"{opt} {bad}"))
    return out


def check(result_code: int, output: str, names: str, before: dict, after: dict, what: str) -> None:
    assert result_code != 0, f"{what}: exit 0\n{output}"
    assert "Traceback" not in output, f"{what}: traceback\n{output}"
    assert names in output, f"{what}: the message does not name {names!r}\n{output}"
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"{what}: changed {changed[:5]}"


def test_every_mistake_gets_a_clear_message(world, tmp_path, monkeypatch):
    monkeypatch.setenv("V3S_WORKSPACE", str(tmp_path / "workspace"))
    failures = []
    for group, name, argv, names, what in tries(world):
        before = snapshot(world["root"], world["store"])
        r = CliRunner().invoke(GROUPS[group], [name, *argv])
        output = r.output + (f"\n{type(r.exception).__name__}: {r.exception}" if r.exception and
                             not isinstance(r.exception, SystemExit) else "")
        try:
            check(r.exit_code, output, names, before, snapshot(world["root"], world["store"]), f"{group} {name}: {what}")
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, f"{len(failures)} tries failed:\n\n" + "\n\n".join(failures)


def test_no_arguments_in_an_empty_workspace(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("V3S_WORKSPACE", str(empty))
    monkeypatch.chdir(empty)
    failures = []
    for group, name, _ in commands():
        if (group, name) in RUNS_WITHOUT_ARGUMENTS:
            continue
        r = CliRunner().invoke(GROUPS[group], [name])
        output = r.output + (f"\n{r.exception!r}" if r.exception and not isinstance(r.exception, SystemExit) else "")
        if r.exit_code == 0 or "Traceback" in output or "Error" not in output:
            failures.append(f"{group} {name}: exit {r.exit_code}\n{output}")
    assert not failures, "\n\n".join(failures)
    assert sorted(p.name for p in empty.iterdir()) == []


def _unprivileged() -> list[str] | None:
    """A prefix that runs a command without CAP_DAC_OVERRIDE (so permission bits bind root), or None.

    setpriv (util-linux, on every Debian) takes the command as an argv; capsh would need a shell string.
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv"):
        return ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search",
                "--"]
    return None


def test_a_read_only_output_folder(world, tmp_path):
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("no way to drop CAP_DAC_OVERRIDE here (setpriv missing), so root would write anyway")
    ro = tmp_path / "read-only"
    ro.mkdir()
    (ro / "kept.txt").write_text("the user's file\n")
    ro.chmod(0o555)
    failures = []
    try:
        for group, name, cmd in commands():
            for p in cmd.params:
                f = field(p)
                if f is None or f.metadata.get("path") != "out-dir":
                    continue
                target = str(ro / "sub") if isinstance(p, click.Argument) else str(ro)
                argv = [str(BIN / group), name, *with_option(world["base"][(group, name)], p, target)]
                before = snapshot(ro, world["store"])
                r = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120,
                                   env={**os.environ, "V3S_WORKSPACE": str(tmp_path / "ws")})
                try:
                    check(r.returncode, r.stdout + r.stderr, str(ro), before, snapshot(ro, world["store"]),
                          f"{group} {name} {p.opts[0] if p.opts else p.name} read-only")
                except AssertionError as e:
                    failures.append(str(e))
    finally:
        ro.chmod(0o755)
    assert not failures, "\n\n".join(failures)

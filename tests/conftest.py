"""Fixtures shared by every test module: the team's reference folder and ffmpeg."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run on 2 cores next to other work: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parents[1]
# ../shared next to the checkout is the team's reference folder (paper, splits, small real videos).
REFERENCE = Path(os.environ.get("V3S_REFERENCE", REPO.parent / "shared" / "reference"))


@pytest.fixture(autouse=True, scope="session")
def _workspace(tmp_path_factory) -> Path:
    """Commands' default store and runs/ go to a folder of the test session, never the current folder."""
    ws = tmp_path_factory.mktemp("workspace")
    os.environ["V3S_WORKSPACE"] = str(ws)
    return ws


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`../shared/reference`; the test skips cleanly when it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference folder {REFERENCE} is absent")
    return REFERENCE


@pytest.fixture(scope="session")
def reference_videos(reference_dir: Path) -> Path:
    d = reference_dir / "videos"
    if not d.is_dir() or not any(d.iterdir()):
        pytest.skip(f"no reference videos in {d}")
    return d


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    from v3s.shared.video import ffmpeg_exe

    return ffmpeg_exe()


@pytest.fixture(scope="session")
def tiny_ucf_store(tmp_path_factory, ffmpeg) -> str:
    """A real store of the synthetic set: 4 classes x 6 videos (16 train / 8 test in split 1), frames at 48x64."""
    from v3s.preprocess.extract import ExtractConfig, run_extract
    from v3s.preprocess.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("tiny_ucf_store")
    generate(SynthConfig(layout="ucf101", classes=4, videos_per_class=6, size=(64, 86), seed=0), root / "raw", jobs=1)
    run_extract(ExtractConfig(root=str(root / "raw"), dataset="ucf101", out=str(root / "store"), size=(48, 64),
                              jobs=1, quiet=True))
    return str(root / "store")

"""`v3s-prep extract ROOT/` without --dataset: the dataset inferred from the folder's name and layout."""
from __future__ import annotations

from pathlib import Path

import pytest

from v3s.data_manifest.detect import infer_dataset


def make(root: Path, *files: str) -> Path:
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    root.mkdir(parents=True, exist_ok=True)
    return root


UCF = ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Archery/v_Archery_g01_c01.avi", "ucfTrainTestlist/classInd.txt")
HMDB = ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair_test_split1.txt")


@pytest.mark.parametrize("name, files, expected, why", [
    ("ucf101", UCF, "ucf101", "the folder's name and its layout"),
    ("UCF-101", UCF[:2], "ucf101", "v_<Class>_gNN_cNN"),
    ("data", UCF, "ucf101", "its layout: UCF101's split files"),
    ("hmdb51", HMDB, "hmdb51", "the folder's name and its layout"),
    ("videos", HMDB, "hmdb51", "HMDB51's split files"),
    ("k400", ("train/abseiling/a1b2c3_000010_000020.mp4", "val/abseiling/x.mp4"), "kinetics400", "split folders"),
    ("clips", ("kinetics400_train.csv",), "kinetics400", "annotation CSVs"),
    ("aslan", ("0001.avi", "0002.avi", "pairs.csv"), "aslan", "numbered videos"),
    ("my_videos", ("cats/a.mp4", "dogs/b.mkv"), "folder", "2 class folders of videos"),
])
def test_layouts_are_recognised(tmp_path, name, files, expected, why):
    got, reason = infer_dataset(make(tmp_path / name, *files))
    assert got == expected and why in reason, reason


@pytest.mark.parametrize("name, files, message", [
    ("ucf101", HMDB, "is named like ucf101 but looks like hmdb51"),
    ("videos", (*UCF, "brush_hair_test_split1.txt"), "could be ucf101"),
    ("empty", (), "does not look like a dataset"),
    ("hmdb51", ("notes.txt",), "is named like hmdb51 but holds no videos"),
])
def test_ambiguous_or_empty_roots_are_errors_that_list_the_candidates(tmp_path, name, files, message):
    with pytest.raises(ValueError, match=message) as e:
        infer_dataset(make(tmp_path / name, *files))
    assert "pass --dataset" in str(e.value)


def test_the_synthetic_set_in_ucf101_layout(tmp_path, ffmpeg):
    from v3s.preprocess.synth import SynthConfig, generate

    generate(SynthConfig(layout="ucf101", classes=2, videos_per_class=3, size=(32, 44)), tmp_path / "ucf101", jobs=1)
    generate(SynthConfig(layout="aslan", classes=20, videos_per_class=3, size=(32, 44), pairs_per_fold=2),
             tmp_path / "aslan", jobs=2)
    assert infer_dataset(tmp_path / "ucf101")[0] == "ucf101"
    assert infer_dataset(tmp_path / "aslan")[0] == "aslan"

"""data_manifest: real official split files, tiny layouts written here, path safety, bundled copies."""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from v3s.data_manifest import DATASETS, VIDEO_EXTENSIONS, Pair, load_manifest, read_pairs
from v3s.data_manifest.splitfile import BUNDLED_ROOT

# Names a user's files really have; each must survive parsing untouched.
ODD_NAMES = ["with space.mp4", "quote's \"dq\".mp4", "$(touch pwned).mp4", "-leading-dash.mp4", "ünïcødé_视频.mp4"]


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_ucf_splits(d: Path, classes: list[str], train: list[str], test: list[str], eol: str = "\r\n",
                     bom: bool = False) -> None:
    """A UCF101-format split folder: classInd, trainlist01 (with ids), testlist01."""
    index = {c: i + 1 for i, c in enumerate(classes)}
    pre = "\ufeff" if bom else ""
    touch(d / "classInd.txt", (pre + "".join(f"{i} {c}{eol}" for c, i in index.items())).encode())
    touch(d / "trainlist01.txt",
          (pre + "".join(f"{p} {index[p.split('/')[0]]}{eol}" for p in train)).encode())
    touch(d / "testlist01.txt", (pre + "".join(f"{p}{eol}" for p in test)).encode())


# ---------------------------------------------------------------------------------------------- API basics

def test_unknown_dataset_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="ucf102") as exc:
        load_manifest(tmp_path, "ucf102")
    for name in DATASETS:
        assert name in str(exc.value)


def test_missing_root_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_manifest(missing, "ucf101")


def test_video_extensions_are_lowercase_suffixes():
    assert {".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".3gp",
            ".ogv"} == VIDEO_EXTENSIONS


def test_missing_splits_dir_and_empty_splits_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_manifest(tmp_path, "ucf101", splits_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="classInd"):
        load_manifest(tmp_path, "ucf101", splits_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="test_split"):
        load_manifest(tmp_path, "hmdb51", splits_dir=tmp_path / "empty")


# ------------------------------------------------------------------------------------ real official splits

def test_bundled_split_files_equal_reference_byte_for_byte(reference_dir):
    for sub, expected_count in (("ucf101", 7), ("hmdb51", 153), ("kinetics400", 1)):
        ref = sorted(p.name for p in (reference_dir / sub).glob("*.txt"))
        ours = sorted(p.name for p in (BUNDLED_ROOT / sub).glob("*.txt"))
        assert ours == ref and len(ours) == expected_count
        for name in ref:
            assert (BUNDLED_ROOT / sub / name).read_bytes() == (reference_dir / sub / name).read_bytes(), name


def test_ucf101_real_splits(reference_dir, tmp_path):
    m = load_manifest(tmp_path, "ucf101", splits_dir=reference_dir / "ucf101")
    assert m.splits_from == str(reference_dir / "ucf101")
    assert len(m.classes) == 101 and len(m.entries) == 13320 and m.split_ids == ("1", "2", "3")
    counts = {s: (len(m.select(s, "train")), len(m.select(s, "test"))) for s in m.split_ids}
    assert counts == {"1": (9537, 3783), "2": (9586, 3734), "3": (9624, 3696)}
    # every video is in every split, as train or test
    assert all(set(e.splits) == {"1", "2", "3"} for e in m.entries)
    assert [e.rel_path for e in m.entries] == sorted({e.rel_path for e in m.entries})
    # labels follow classInd (1-based there): the train lists' ids were cross-checked while parsing
    assert m.classes[0] == "ApplyEyeMakeup" and m.classes[-1] == "YoYo"
    assert all(m.classes[e.label] == e.class_name == e.rel_path.split("/")[0] for e in m.entries)
    hs = [e for e in m.entries if e.class_name == "HandstandPushups"]
    assert hs and all(e.rel_path.startswith("HandstandPushups/v_HandStandPushups_g") for e in hs)
    # the bundled copies give the same manifest
    bundled = load_manifest(tmp_path, "ucf101")
    assert bundled.splits_from == "bundled:ucf101" and bundled.entries == m.entries


def test_hmdb51_real_splits(reference_dir, tmp_path):
    m = load_manifest(tmp_path, "hmdb51", splits_dir=reference_dir / "hmdb51")
    assert len(m.classes) == 51 and len(m.entries) == 6766 and m.split_ids == ("1", "2", "3")
    for s in m.split_ids:
        assert (len(m.select(s, "train")), len(m.select(s, "test"))) == (3570, 1530)
    assert m.classes == tuple(sorted(m.classes)) and m.classes[0] == "brush_hair"
    names = {e.rel_path for e in m.entries}
    assert "shake_hands/Jay_Leno_@_David_Letterman_shake_hands_f_cm_np2_le_med_0.avi" in names
    assert "cartwheel/Geena_und_die_Radschl_ge___;-)_cartwheel_f_cm_np1_fr_med_2.avi" in names
    assert "brush_hair/Brushing_Her_Hair__[_NEW_AUDIO_]_UPDATED!!!!_brush_hair_h_cm_np1_fr_goo_0.avi" in names
    joined = "".join(names)
    for ch in "!()#[]&+;~@":
        assert ch in joined, ch
    assert all(not n.endswith(" ") and n.endswith(".avi") for n in names)
    # "0" lines are kept as entries but are absent from that split
    jenny = next(e for e in m.entries if e.rel_path == "cartwheel/jenny_~_rad_cartwheel_f_cm_np1_ri_med_0.avi")
    assert "1" not in jenny.splits
    assert load_manifest(tmp_path, "hmdb51").entries == m.entries


# --------------------------------------------------------------------------------------- tiny UCF101 layouts

@pytest.mark.parametrize("eol,bom", [("\r\n", False), ("\n", False), ("\r\n", True)])
def test_ucf101_line_endings_and_bom(tmp_path, eol, bom):
    write_ucf_splits(tmp_path / "ucfTrainTestlist", ["Archery", "HandstandPushups"],
                     ["Archery/v_Archery_g08_c01.avi", "HandstandPushups/v_HandStandPushups_g08_c01.avi"],
                     ["Archery/v_Archery_g01_c01.avi"], eol=eol, bom=bom)
    m = load_manifest(tmp_path, "ucf101")
    assert m.classes == ("Archery", "HandstandPushups")
    assert [(e.rel_path, e.label, dict(e.splits)) for e in m.entries] == [
        ("Archery/v_Archery_g01_c01.avi", 0, {"1": "test"}),
        ("Archery/v_Archery_g08_c01.avi", 0, {"1": "train"}),
        ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 1, {"1": "train"}),
    ]


def test_ucf101_split_lookup_order(tmp_path):
    """--splits DIR beats ROOT/ucfTrainTestlist/, which beats ROOT, which beats the bundled files."""
    root = tmp_path / "root"
    write_ucf_splits(root, ["InRoot"], ["InRoot/v_a.avi"], [])
    assert load_manifest(root, "ucf101").classes == ("InRoot",)
    write_ucf_splits(root / "ucfTrainTestlist", ["InSub"], ["InSub/v_a.avi"], [])
    m = load_manifest(root, "ucf101")
    assert m.classes == ("InSub",) and m.splits_from == str(root / "ucfTrainTestlist")
    write_ucf_splits(tmp_path / "mine", ["Mine"], ["Mine/v_a.avi"], ["Mine/v_b.avi"])
    m = load_manifest(root, "ucf101", splits_dir=tmp_path / "mine")
    assert m.classes == ("Mine",) and len(m.entries) == 2


def test_ucf101_malformed_lines_name_file_and_line(tmp_path):
    d = tmp_path / "s"
    write_ucf_splits(d, ["A", "B"], ["A/v_1.avi", "B/v_2.avi"], [])
    touch(d / "trainlist01.txt", b"A/v_1.avi 1\r\nB/v_2.avi 1\r\n")  # B is class 2
    with pytest.raises(ValueError, match=re.escape(f"{d / 'trainlist01.txt'}:2") + ".*does not match"):
        load_manifest(tmp_path, "ucf101", splits_dir=d)
    touch(d / "trainlist01.txt", b"A/v_1.avi 1\r\n\r\nC/v_3.avi 1\r\n")
    with pytest.raises(ValueError, match=re.escape(f"{d / 'trainlist01.txt'}:3") + ".*'C' is not in classInd"):
        load_manifest(tmp_path, "ucf101", splits_dir=d)
    touch(d / "trainlist01.txt", b"A/v_1.avi 1\n")
    touch(d / "testlist01.txt", b"A/v_1.avi\n")
    with pytest.raises(ValueError, match=re.escape(f"{d / 'trainlist01.txt'}:1") + ".*is both test and train in split 1"):
        load_manifest(tmp_path, "ucf101", splits_dir=d)
    touch(d / "testlist01.txt", b"v_no_class.avi\n")
    with pytest.raises(ValueError, match=re.escape(f"{d / 'testlist01.txt'}:1")):
        load_manifest(tmp_path, "ucf101", splits_dir=d)


TRAVERSALS = ["../outside/v_x.avi", "A/../../etc/passwd", "/etc/passwd", "~/v_x.avi", "A\\..\\..\\x.avi",
              "C:\\x.avi"]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_traversal_rejected_in_ucf_lists(tmp_path, bad):
    d = tmp_path / "s"
    write_ucf_splits(d, ["A"], ["A/v_1.avi"], [])
    touch(d / "testlist01.txt", f"A/v_2.avi\r\n\r\n{bad}\r\n".encode())
    with pytest.raises(ValueError) as exc:
        load_manifest(tmp_path, "ucf101", splits_dir=d)
    assert f"{d / 'testlist01.txt'}:3" in str(exc.value) and repr(bad) in str(exc.value)


# ---------------------------------------------------------------------------------------- tiny HMDB51 layouts

def test_hmdb51_local_splits_and_odd_names(tmp_path):
    root = tmp_path / "hmdb"
    d = root / "testTrainMulti_7030_splits"
    names = ["Jay_Leno_@_x_(1)_[a]_#2_&_+_;-)_~_!.avi"] + [n.replace(".mp4", ".avi") for n in ODD_NAMES]
    flags = ["1", "2", "0", "1", "2", "1"]
    touch(d / "wave_test_split1.txt", "".join(f"{n} {f} \n" for n, f in zip(names, flags)).encode())
    touch(d / "wave_test_split2.txt", "".join(f"{n} 1 \n" for n in names).encode())
    touch(d / "clap_test_split1.txt", b"\xef\xbb\xbfc1.avi 2 \r\n\r\nc2.avi 1 \r\n")
    # ROOT-level files exist too but the testTrainMulti_7030_splits folder wins
    touch(root / "other_test_split1.txt", b"o.avi 1 \n")
    m = load_manifest(root, "hmdb51")
    assert m.classes == ("clap", "wave") and m.split_ids == ("1", "2")
    by_path = {e.rel_path: e for e in m.entries}
    assert set(by_path) == {f"wave/{n}" for n in names} | {"clap/c1.avi", "clap/c2.avi"}
    assert by_path["wave/" + names[0]].splits == {"1": "train", "2": "train"}
    assert by_path["wave/" + names[2]].splits == {"2": "train"}  # flag 0 in split 1
    assert by_path["clap/c1.avi"].splits == {"1": "test"} and by_path["clap/c1.avi"].label == 0
    # a --splits folder beats both
    touch(tmp_path / "mine" / "jump_test_split1.txt", b"j.avi 1 \n")
    assert load_manifest(root, "hmdb51", splits_dir=tmp_path / "mine").classes == ("jump",)


@pytest.mark.parametrize("line,why", [("x.avi 3 ", "<0|1|2>"), ("x.avi", "<0|1|2>"), ("../x.avi 1 ", "'..'"),
                                      ("/abs/x.avi 1 ", "absolute")])
def test_hmdb51_bad_lines_name_file_and_line(tmp_path, line, why):
    f = touch(tmp_path / "s" / "run_test_split1.txt", f"ok.avi 1 \n{line}\n".encode())
    with pytest.raises(ValueError, match=re.escape(f"{f}:2") + ".*" + re.escape(why)):
        load_manifest(tmp_path, "hmdb51", splits_dir=tmp_path / "s")


# --------------------------------------------------------------------------------------------- Kinetics-400

K_CLASSES = ["massaging person's head", "passing American football (in game)", "abseiling"]


def test_kinetics_folders(tmp_path):
    touch(tmp_path / "train" / K_CLASSES[0] / "aaaaaaaaaaa_000001_000011.mp4")
    touch(tmp_path / "train" / "passing_American_football_(in_game)" / "-bbbbbbbbbb_000002_000012.mkv")
    touch(tmp_path / "validate" / "abseiling" / "ccccccccccc_000003_000013.mp4")
    touch(tmp_path / "test" / "ddddddddddd_000004_000014.mp4")
    touch(tmp_path / "train" / "abseiling" / ".hidden.mp4")
    touch(tmp_path / "train" / "abseiling" / "notes.txt")
    m = load_manifest(tmp_path, "kinetics400")
    assert len(m.classes) == 400 and m.split_ids == ("1",) and m.classes[0] == "abseiling"
    got = {e.rel_path: (e.class_name, e.label, e.splits["1"]) for e in m.entries}
    assert got == {
        f"train/{K_CLASSES[0]}/aaaaaaaaaaa_000001_000011.mp4":
            (K_CLASSES[0], m.classes.index(K_CLASSES[0]), "train"),
        "train/passing_American_football_(in_game)/-bbbbbbbbbb_000002_000012.mkv":
            (K_CLASSES[1], m.classes.index(K_CLASSES[1]), "train"),
        "validate/abseiling/ccccccccccc_000003_000013.mp4": ("abseiling", 0, "val"),
        "test/ddddddddddd_000004_000014.mp4": ("", -1, "test"),
    }
    touch(tmp_path / "train" / "not a kinetics class" / "x.mp4")
    with pytest.raises(ValueError, match="not a kinetics class"):
        load_manifest(tmp_path, "kinetics400")


def test_kinetics_csv(tmp_path):
    ann = tmp_path / "annotations"
    touch(ann / "kinetics-400_train.csv", (
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        f"\"{K_CLASSES[1]}\",-bbbbbbbbbb,2,12,train,0\n"
        f"{K_CLASSES[0]},aaaaaaaaaaa,417,427,train,1\n").encode())
    touch(ann / "kinetics-400_val.csv",
          b"label,youtube_id,time_start,time_end,split,is_cc\r\nabseiling,ccccccccccc,3.0,13.0,val,0\r\n")
    touch(ann / "kinetics-400_test.csv", b"youtube_id,time_start,time_end,split\nddddddddddd,4,14,test\n")
    # one row's file is on disk (in a differently named folder), one extra video on disk has no row
    touch(tmp_path / "train" / "passing_American_football_(in_game)" / "-bbbbbbbbbb_000002_000012.mp4")
    touch(tmp_path / "train" / "abseiling" / "eeeeeeeeeee_000000_000010.mp4")
    m = load_manifest(tmp_path, "kinetics400")
    assert m.splits_from == str(ann)
    got = {e.rel_path: (e.class_name, e.label, e.splits["1"]) for e in m.entries}
    assert got == {
        "train/passing_American_football_(in_game)/-bbbbbbbbbb_000002_000012.mp4":
            (K_CLASSES[1], m.classes.index(K_CLASSES[1]), "train"),
        f"train/{K_CLASSES[0]}/aaaaaaaaaaa_000417_000427.mp4": (K_CLASSES[0], m.classes.index(K_CLASSES[0]), "train"),
        "val/abseiling/ccccccccccc_000003_000013.mp4": ("abseiling", 0, "val"),
        "test/ddddddddddd_000004_000014.mp4": ("", -1, "test"),
        "train/abseiling/eeeeeeeeeee_000000_000010.mp4": ("abseiling", 0, "train"),
    }
    touch(ann / "kinetics-400_val.csv", b"label,youtube_id,time_start,time_end,split,is_cc\nflying,x1,0,10,val,0\n")
    with pytest.raises(ValueError, match=re.escape(f"{ann / 'kinetics-400_val.csv'}:2") + ".*'flying'"):
        load_manifest(tmp_path, "kinetics400")
    touch(ann / "kinetics-400_val.csv", b"label,youtube_id,time_start,time_end,split,is_cc\nabseiling,../x,0,10,val,0\n")
    with pytest.raises(ValueError, match=re.escape(f"{ann / 'kinetics-400_val.csv'}:2") + ".*youtube_id"):
        load_manifest(tmp_path, "kinetics400")


def test_kinetics_empty_root_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no split folders"):
        load_manifest(tmp_path, "kinetics400")


# -------------------------------------------------------------------------------------------------- ASLAN

ASLAN_ROWS = [  # fold, first, second, same, first_action, second_action
    (1, 1, 2, 1, 3, 3), (1, 1, 4, 0, 3, 1), (2, 5, 6, 1, 2, 2), (2, 4, 7, 0, 1, 2),
]


def write_aslan_samples(root: Path) -> None:
    for i in (1, 2, 4, 5):
        touch(root / f"{i:04d}.avi")
    touch(root / "more" / "0006.avi")  # one folder down; 0007 has no file at all


def check_aslan(m, root: Path) -> None:
    assert m.name == "aslan" and m.split_ids == ("fold1", "fold2")
    got = {e.rel_path: (e.class_name, e.label, dict(e.splits)) for e in m.entries}
    assert got == {
        "0001.avi": ("3", 2, {"fold1": "test"}),
        "0002.avi": ("3", 2, {"fold1": "test"}),
        "0004.avi": ("1", 0, {"fold1": "test", "fold2": "test"}),
        "0005.avi": ("2", 1, {"fold2": "test"}),
        "more/0006.avi": ("2", 1, {"fold2": "test"}),
        "0007.avi": ("2", 1, {"fold2": "test"}),
    }
    assert m.pairs == (Pair(1, "0001.avi", "0002.avi", True, 3, 3), Pair(1, "0001.avi", "0004.avi", False, 3, 1),
                       Pair(2, "0005.avi", "more/0006.avi", True, 2, 2), Pair(2, "0004.avi", "0007.avi", False, 1, 2))


def test_aslan_csv(tmp_path):
    write_aslan_samples(tmp_path)
    lines = ["fold,first,second,same,first_action,second_action"]
    lines += [f"{f},{a:04d},{b:04d},{s},{x},{y}" for f, a, b, s, x, y in ASLAN_ROWS]
    touch(tmp_path / "pairs.csv", ("\r\n".join(lines) + "\r\n").encode())
    check_aslan(load_manifest(tmp_path, "aslan"), tmp_path)
    assert read_pairs(tmp_path / "pairs.csv")[0] == Pair(1, "0001", "0002", True, 3, 3)
    touch(tmp_path / "Actions_Ids.txt", b"clap\nwave\njump\n")
    m = load_manifest(tmp_path, "aslan")
    assert m.classes == ("clap", "wave", "jump") and m.entries[0].class_name == "jump"
    touch(tmp_path / "pairs.csv", ("\n".join(lines + ["1,0001,0002,2,3,3"]) + "\n").encode())
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'pairs.csv'}:6") + ".*same"):
        load_manifest(tmp_path, "aslan")


def test_aslan_view2_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    write_aslan_samples(tmp_path)
    arr = np.zeros((2, 5, 2))  # (pairs per fold, 5 columns, folds), as the authors' 600x5x10
    for f, a, b, s, x, y in ASLAN_ROWS:
        row = 0 if arr[0, 0, f - 1] == 0 else 1
        arr[row, :, f - 1] = (a, b, s, x, y)
    splits = tmp_path / "protocol"
    splits.mkdir()
    scipy_io.savemat(splits / "View2.mat", {"action_splits_pairs": arr})
    with pytest.raises(FileNotFoundError, match="View2.mat or pairs.csv"):
        load_manifest(tmp_path, "aslan")
    check_aslan(load_manifest(tmp_path, "aslan", splits_dir=splits), tmp_path)
    scipy_io.savemat(splits / "View2.mat", {"action_splits_pairs": arr[:, :4]})
    with pytest.raises(ValueError, match=r"shape \(2, 4, 2\)"):
        read_pairs(splits / "View2.mat")


# --------------------------------------------------------------------------------------------------- folder

def test_folder_layout_lists_everything_named_like_a_video(tmp_path):
    for n in ODD_NAMES:
        touch(tmp_path / "b class" / n)
    touch(tmp_path / "a" / "nested" / "deep" / "clip.MKV")
    (tmp_path / "a" / "dir_named_like.mp4").mkdir()
    touch(tmp_path / "a" / "dir_named_like.mp4" / "inner.mp4")  # not descended into
    os.symlink(tmp_path / "gone.avi", tmp_path / "a" / "dangling.avi")
    touch(tmp_path / "a" / "._resource_fork.mp4")
    touch(tmp_path / "a" / "readme.txt")
    touch(tmp_path / "stray_top_level.mp4")  # not in a class folder
    (tmp_path / "empty_class").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "a" / "nested" / "loop")  # a link loop must end
    m = load_manifest(tmp_path, "folder")
    assert m.classes == ("a", "b class") and m.split_ids == ("1",) and m.splits_from == ""
    expected = sorted(["a/dangling.avi", "a/dir_named_like.mp4", "a/nested/deep/clip.MKV"]
                      + [f"b class/{n}" for n in ODD_NAMES])
    assert [e.rel_path for e in m.entries] == expected
    assert all(e.splits == {"1": "train"} and m.classes[e.label] == e.class_name for e in m.entries)
    assert pickle.loads(pickle.dumps(m)) == m  # the extractor ships entries to worker processes


def test_folder_with_lists(tmp_path):
    touch(tmp_path / "jump" / "j1.mp4")
    touch(tmp_path / "jump" / "j2.mp4")
    touch(tmp_path / "wave" / "-w 1.mp4")
    touch(tmp_path / "trainlist01.txt", "jump/j1.mp4\nwave/-w 1.mp4\n".encode())
    touch(tmp_path / "testlist01.txt", "jump/j2.mp4\nzoom/missing.mp4\n".encode())
    m = load_manifest(tmp_path, "folder")
    assert m.classes == ("jump", "wave", "zoom") and m.splits_from == str(tmp_path)
    assert {e.rel_path: e.splits for e in m.entries} == {
        "jump/j1.mp4": {"1": "train"}, "jump/j2.mp4": {"1": "test"}, "wave/-w 1.mp4": {"1": "train"},
        "zoom/missing.mp4": {"1": "test"}}
    touch(tmp_path / "elsewhere" / "testlist01.txt", b"../jump/j1.mp4\n")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'elsewhere' / 'testlist01.txt'}:1")):
        load_manifest(tmp_path, "folder", splits_dir=tmp_path / "elsewhere")


def test_folder_without_videos_is_an_error(tmp_path):
    touch(tmp_path / "flat.mp4")
    with pytest.raises(ValueError, match="ROOT/<class>/<video>"):
        load_manifest(tmp_path, "folder")


def test_video_group_reads_ucf101_recording_groups_only():
    from v3s.data_manifest import video_group

    assert video_group("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi") == "g08"
    assert video_group("HandstandPushups/v_HandStandPushups_g25_c04.avi") == "g25"
    assert video_group("x/v_X_g8_c1.mp4") == "g08"  # one number, however it is padded
    assert video_group("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi") is None  # HMDB51
    assert video_group("v_X_g08_c01") is None and video_group("a/g08_c01.avi/x.avi") is None

"""Readers of the real formats, on the small fixtures in tests/fixtures (see make_fixtures.py):
CRLF files, several pairs per line, a missing image, a corrupt image, malformed lines;
verify-data's file:line reports and the cleaned split it writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import fgfs_lib.data as data
from fgfs_lib.data import asen_format, commands, fashionai, shopping100k, verify, zappos

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def problem_sites(problems) -> set[tuple[str, int]]:
    return {(p.path.name, p.line) for p in problems}


# ---------------------------------------------------------------- ASEN split format
def test_asen_reader_parses_crlf_and_several_pairs_per_line():
    raw = (FIXTURES / "asen" / "label_train.txt").read_bytes()
    assert b"\r\n" in raw  # the fixture really has Windows line endings
    contents = asen_format.read_folder(FIXTURES / "asen")
    assert contents.meta.attribute_names == ["texture", "shape", "style"]
    assert contents.meta.num_values == [3, 2, 4]
    expected = torch.tensor([[1, 0, -1], [-1, -1, 3], [2, 1, 0], [-1, -1, -1], [0, -1, -1]])
    assert torch.equal(torch.from_numpy(contents.labels["train"]), expected)
    # Without label_valid.txt the valid labels are the union of queries and candidates.
    assert contents.labels["valid"].tolist() == [[1, -1, -1], [-1, 0, 3], [1, -1, -1], [-1, -1, 3]]
    assert contents.filenames["train"][0] == "img/train_0.png"  # no stray \r
    assert problem_sites(contents.problems) == {("label_train.txt", 4)}


def test_asen_load_refuses_a_malformed_line_with_file_and_line():
    with pytest.raises(data.DataFormatError, match=r"label_train.txt:4: expected integers") as err:
        data.load("darn", root=FIXTURES / "asen")
    assert "verify-data --dataset darn" in str(err.value)


def test_asen_reader_reports_out_of_range_and_conflicting_values(tmp_path):
    root = tmp_path / "d"
    shutil.copytree(FIXTURES / "asen", root)
    (root / "label_train.txt").write_text("0 0 3\n1 5 0\n7 0 0\n2 0 1\n2 0 2\n0 1\n")
    problems = asen_format.read_folder(root).problems
    reasons = {p.line: p.reason for p in problems if p.path.name == "label_train.txt"}
    assert "value 3 out of range 0..2" in reasons[1]
    assert "attribute id 5 out of range" in reasons[2]
    assert "image id 7 out of range 0..4" in reasons[3]
    assert "conflicts" in reasons[5]
    assert "odd number" in reasons[6]


def test_verify_data_reports_missing_corrupt_and_malformed(capsys):
    report = verify.verify("darn", FIXTURES / "asen")
    assert problem_sites(report.problems) == {
        ("label_train.txt", 4), ("filenames_test.txt", 3), ("filenames_valid.txt", 4)}
    kinds = {(p.path.name, p.kind) for p in report.problems}
    assert ("filenames_test.txt", "missing") in kinds and ("filenames_valid.txt", "corrupt") in kinds
    assert commands.verify_data(["--dataset", "darn", "--root", str(FIXTURES / "asen")]) == 2
    out = capsys.readouterr().out
    assert "filenames_test.txt:3: image" in out and "is missing" in out
    assert "3 problem(s)" in out


def test_verify_data_writes_a_clean_split_that_loads(tmp_path):
    clean = tmp_path / "clean"
    rc = commands.verify_data(["--dataset", "darn", "--root", str(FIXTURES / "asen"), "--write-clean", str(clean)])
    assert rc == 2  # problems were found (and cleaned)
    assert commands.verify_data(["--dataset", "darn", "--root", str(clean)]) == 0
    d = data.load("darn", root=clean, image_size=8)
    assert [len(d.train), len(d.valid), len(d.test)] == [5, 3, 3]
    # The malformed train line is gone; the others keep their ids.
    assert d.train.labels.tolist() == [[1, 0, -1], [-1, -1, 3], [2, 1, 0], [-1, -1, -1], [0, -1, -1]]
    # valid image 3 (corrupt) dropped with its candidate line; test image 2 (missing) dropped, 3 -> 2.
    assert d.valid_candidates.tolist() == [[2, 0, 1], [1, 1, 0]]
    assert d.test_candidates.tolist() == [[1, 1, 1], [2, 1, 1]]
    x = d.test.batch([0, 2])
    assert x.shape == (2, 3, 8, 8) and d.test.boxes is None and not d.test.has_regions


def test_verify_data_command_errors(tmp_path, capsys):
    from fgfs_lib import cli  # errors reach the user through cli.main: error: ..., exit 2

    assert cli.main(["verify-data", "--dataset", "darn", "--root", str(tmp_path / "none")]) == 2
    assert str(tmp_path / "none") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        commands.verify_data(["--dataset", "imagenet", "--root", str(tmp_path)])
    assert "fashionsynth" in capsys.readouterr().err  # argparse lists the valid names
    assert cli.main(["verify-data", "--dataset", "darn", "--root", str(FIXTURES / "asen"),
                     "--write-clean", str(FIXTURES / "asen")]) == 2


# ---------------------------------------------------------------- FashionAI CSV
def test_fashionai_csv_reader_finds_values_and_bad_lines():
    problems: list = []
    rows = fashionai.read_fashionai_csv(FIXTURES / "fashionai" / "Annotations" / "label.csv", problems)
    assert len(rows) == 12
    first = rows[0]
    assert first == ("Images/collar_design_labels/collar_design_1.jpg", 4, 1)  # position of the 'y'
    assert rows[5] == ("Images/skirt_length_labels/skirt_length_2.jpg", 0, 2)  # 'm' elsewhere is fine
    assert problem_sites(problems) == {("label.csv", 13), ("label.csv", 14)}
    assert "exactly one 'y'" in next(p.reason for p in problems if p.line == 13)


def test_fashionai_converter_writes_an_asen_folder(tmp_path):
    root = tmp_path / "fashionai"
    shutil.copytree(FIXTURES / "fashionai", root)
    with pytest.raises(data.DataFormatError, match="label.csv:13"):
        fashionai.convert_fashionai_csv(root / "Annotations" / "label.csv", out_dir=root / "split", image_root=root)
    out = fashionai.convert_fashionai_csv(root / "Annotations" / "label.csv", out_dir=root / "split",
                                          image_root=root, strict=False, valid_fraction=0.25, test_fraction=0.25)
    d = data.load("fashionai", root=out, image_size=8)
    assert d.meta.num_values == [6, 9, 8, 6, 5, 5, 10, 5]
    assert d.meta.value_names[4][1] == "Shirt Collar"
    assert len(d.train) + len(d.valid) + len(d.test) == 12
    assert len(d.valid) == 3 and len(d.test) == 3
    # every image keeps its one attribute, and the value matches its file name
    for split in (d.train, d.valid, d.test):
        known = split.labels >= 0
        assert torch.equal(known.sum(1), torch.ones(len(split), dtype=torch.long))
        for i, path in enumerate(split.paths):
            a = int(known[i].nonzero())
            assert path.stem.endswith(f"_{int(split.labels[i, a])}") and path.is_file()
    # 3 validation images at query fraction 0.2 give no validation query: reported, not OK
    report = verify.verify("fashionai", out)
    assert [(p.path.name, p.line, "empty" in p.reason) for p in report.problems] == [("query_valid.txt", 1, True)]


# ---------------------------------------------------------------- Zappos50k
def test_zappos_reader_rows_and_problems():
    names, triplets, problems = zappos.read_zappos(FIXTURES / "zappos50k")
    assert len(names) == 6
    # "i j k": i is closer to k than to j -> row (anchor i, closer k, farther j, condition)
    assert triplets["train"][:2].tolist() == [[0, 2, 1, 0], [3, 0, 4, 0]]
    assert triplets["test"].tolist() == [[2, 4, 3, 0], [0, 5, 1, 1], [4, 0, 2, 2], [1, 2, 4, 3]]
    assert problem_sites(problems) == {("gender_tripletlist_train.txt", 2)}
    report = verify.verify("zappos50k", FIXTURES / "zappos50k")
    assert ("filenames.json", 6) in problem_sites(report.problems)


def test_zappos_clean_and_load(tmp_path):
    with pytest.raises(data.DataFormatError, match="gender_tripletlist_train.txt:2"):
        data.load("zappos50k", root=FIXTURES / "zappos50k")
    report = verify.verify("zappos50k", FIXTURES / "zappos50k")
    clean = verify.write_clean(report, tmp_path / "z")
    d = data.load("zappos50k", root=clean, image_size=8)
    assert isinstance(d, zappos.TripletData) and len(d.images) == 6
    assert d.triplets["test"].tolist() == [[2, 4, 3, 0], [4, 0, 2, 2], [1, 2, 4, 3]]  # the one with image 5 dropped
    assert len(d.triplets["train"]) == 5  # 6 lines, the malformed one dropped
    assert d.images.batch([0, 4]).shape == (2, 3, 8, 8)


def test_zappos_reader_takes_other_condition_names(tmp_path):
    root = tmp_path / "lists"
    (root / "tripletlists").mkdir(parents=True)
    (root / "filenames.json").write_text('["a.png", "b.png", "c.png"]\n')
    for condition, lines in (("colour", "0 1 2\n2 0 1\n"), ("pattern", "1 2 0\n")):
        for split in ("train", "val", "test"):
            (root / "tripletlists" / f"{condition}_tripletlist_{split}.txt").write_text(lines)
    d = zappos.load_zappos(root, image_size=8, conditions=["colour", "pattern"], name="mine")
    assert d.triplets["test"].tolist() == [[0, 2, 1, 0], [2, 1, 0, 0], [1, 0, 2, 1]]  # condition = list position
    assert d.meta.name == "mine" and d.meta.attribute_names == ["colour", "pattern"]
    assert d.images.labels.shape == (3, 2) and d.config["conditions"] == ["colour", "pattern"]
    assert d.summary().startswith("mine at ")
    # without names, Zappos50k's four are expected, with Zappos50k's message
    with pytest.raises(data.DataFormatError, match=r"class_tripletlist_train.txt: file missing(.|\n)*"
                                                   r"verify-data --dataset zappos50k"):
        zappos.load_zappos(root)
    with pytest.raises(data.DataFormatError, match=r"heel_tripletlist_val.txt: file missing"):
        zappos.load_zappos(root, conditions=["colour", "heel"])


# ---------------------------------------------------------------- Shopping100k
def test_shopping100k_reader_labels_and_problems():
    meta, names, labels, problems = shopping100k.read_shopping100k(FIXTURES / "shopping100k")
    assert meta.num_values == [3, 2, 4] and meta.attribute_names == ["attr_0", "attr_1", "attr_2"]
    assert labels["train"].tolist() == [[0, 1, 2], [1, 0, -1], [2, 1, 3], [0, 0, 0]]  # all-zero group -> -1
    assert problem_sites(problems) == {("labels_test.txt", 4)}


def test_shopping100k_clean_and_load(tmp_path):
    report = verify.verify("shopping100k", FIXTURES / "shopping100k")
    assert problem_sites(report.problems) == {("labels_test.txt", 4), ("imgs_train.txt", 3)}
    clean = verify.write_clean(report, tmp_path / "s")
    d = data.load("shopping100k", root=clean, image_size=8, protocol="multilabel")
    assert len(d.test) == 3 and len(d.train) + len(d.valid) == 3
    assert d.test.labels.tolist() == [[1, 1, 1], [2, 0, 2], [0, 1, 3]]
    rows = torch.cat([d.test_queries, d.test_candidates])
    assert len(rows) == 9 and torch.equal(d.test.labels[rows[:, 0], rows[:, 1]], rows[:, 2])


# ---------------------------------------------------------------- names and roots
@pytest.mark.parametrize("name", ["fashionai", "darn", "deepfashion", "zappos50k", "shopping100k"])
def test_wrong_root_names_the_path_and_what_was_expected(tmp_path, name):
    with pytest.raises(FileNotFoundError) as err:
        data.load(name, root=tmp_path / "missing")
    message = str(err.value)
    assert str(tmp_path / "missing") in message and "expected" in message


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError) as err:
        data.load("deep_fashion")
    for name in data.DATASETS:
        assert name in str(err.value)

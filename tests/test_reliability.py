"""Bad input, as a new user meets it: each case gives one clear ``error:`` line that names the
user's file, option or variable, exits 2, and loses nothing (checksums before and after).

Most cases call ``cli.main`` in-process (importing torch in a subprocess costs seconds); two
subprocess checks prove the real entry point prints no traceback. With
``FGFS_RELIABILITY_TABLE=FILE`` the run writes the table (case, message, exit code).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fgfs_lib import cli, metrics, utils
from fgfs_lib.data import synth

REPO = Path(__file__).resolve().parent.parent
TABLE: list[tuple[str, str, int]] = []


def checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(capsys, case: str, *argv: str) -> tuple[int, str]:
    """``cli.main(argv)`` -> (exit code, stderr + stdout); records the case for the table."""
    capsys.readouterr()
    rc = cli.main(list(argv))
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    shown = errors[0] if errors else (captured.out.strip().splitlines() or [""])[0]
    TABLE.append((case, shown, rc))
    return rc, captured.err + captured.out


@pytest.fixture(scope="module", autouse=True)
def write_table():
    yield
    target = os.environ.get("FGFS_RELIABILITY_TABLE")
    if target:
        rows = ["| case | message | exit |", "|---|---|---|"]
        rows += [f"| {case} | `{message.replace('|', '/')}` | {rc} |" for case, message, rc in TABLE]
        Path(target).write_text("\n".join(rows) + "\n")


@pytest.fixture(autouse=True)
def sandbox(tmp_path_factory, monkeypatch):
    """Generated data and outputs go to a temporary folder; no profile, seed or device forced."""
    base = tmp_path_factory.getbasetemp() / "reliability_env"
    monkeypatch.setenv("FGFS_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(base / "out"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for var in ("FGFS_PROFILE", "FGFS_SEED", "FGFS_DEVICE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A tiny FashionSynth written by make-data (200 images at 32 px)."""
    return synth.make_fashionsynth(tmp_path_factory.mktemp("rel") / "fs", num_images=200, image_size=32,
                                   processes=1)


@pytest.fixture(scope="module")
def run_dir(dataset, tmp_path_factory) -> Path:
    """One tiny ASEN run (1 epoch of 2 steps) through the command line."""
    out = tmp_path_factory.mktemp("rel") / "run"
    env = {"FGFS_DATA_DIR": str(out.parent / "data"), "TQDM_DISABLE": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert cli.main(["train", "--model", "asen", "--root", str(dataset), "--out", str(out), "--epochs", "1",
                         "--steps-per-epoch", "2", "--batch-size", "8"]) == 0
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return out


def copy_dataset(dataset: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(dataset, target)
    return target


# ------------------------------------------------------------------------------ nothing lost


def test_make_data_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    before = checksums(tmp_path)
    rc, err = run(capsys, "make-data --out a folder holding notes.txt", "make-data", "--num-images", "40",
                  "--image-size", "16", "--processes", "1", "--out", str(out))
    assert rc == 2
    assert f"error: the output folder {out} is not empty and was not written by make-data" in err
    assert f"({out})" in err and "--overwrite" in err and "Traceback" not in err
    assert checksums(tmp_path) == before


def test_make_data_overwrite_adds_and_keeps_the_users_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert cli.main(["make-data", "--num-images", "40", "--image-size", "16", "--processes", "1", "--out", str(out),
                     "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "config.json").is_file() and utils.read_manifest(out)["command"] == "make-data"


def test_make_data_replaces_exactly_its_earlier_output(tmp_path, capsys):
    out = tmp_path / "fs"
    args = ["make-data", "--image-size", "16", "--processes", "1", "--out", str(out)]
    assert cli.main(args + ["--num-images", "60"]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "images" / "train" / "mine.txt").write_text("also mine")
    assert cli.main(args + ["--num-images", "40"]) == 0  # an earlier make-data output: no flag needed
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "images" / "train" / "mine.txt").read_text() == "also mine"
    again = tmp_path / "fresh"
    assert cli.main(args[:-1] + [str(again), "--num-images", "40"]) == 0
    fresh = checksums(again)
    users = {"notes.txt", "images/train/mine.txt"}
    assert {k: v for k, v in checksums(out).items() if k not in users} == fresh  # old images are gone


def test_interrupted_temporaries_are_removed_on_the_next_run(tmp_path):
    target = tmp_path / "fs"
    dead = tmp_path / f".fs.{utils._host()}-{2 ** 22 + 12345}.abc.tmp"  # above any pid_max: no such process
    alive = tmp_path / f".fs.{utils._host()}-{os.getpid()}.abd.tmp"  # a running job's temporary
    user = tmp_path / ".fs.my-own.tmp"
    for folder in (dead, alive, user):
        folder.mkdir()
        (folder / "x").write_text("x")
    with utils.atomic_path(target, directory=True, command="make-data") as tmp:
        (tmp / "a").write_text("a")
    assert not dead.exists() and alive.exists() and user.exists()


def test_outputs_get_the_users_normal_permissions(run_dir, tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    for path in (run_dir / "last.pt", run_dir / "best.pt"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    with utils.atomic_path(tmp_path / "d", directory=True) as tmp:
        (tmp / "f").write_text("x")
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~mask


@pytest.mark.parametrize("where", ["parent", "inside", "itself"])
def test_write_clean_never_touches_the_dataset_or_its_parent(dataset, tmp_path, capsys, where):
    parent = tmp_path / "parent"
    root = copy_dataset(dataset, parent / "ds")
    (parent / "thesis.tex").write_text("years of work")
    target = {"parent": parent, "inside": root / "clean", "itself": root}[where]
    before = checksums(parent)
    rc, err = run(capsys, f"verify-data --write-clean {where} of the dataset", "verify-data", "--dataset",
                  "fashionsynth", "--root", str(root), "--write-clean", str(target), "--no-decode")
    assert rc == 2
    assert f"error: --write-clean {target}" in err and f"({target})" in err and "fix:" in err
    assert checksums(parent) == before and not (root / "clean").exists()


def test_write_clean_refuses_a_foreign_folder_and_replaces_its_own(dataset, tmp_path, capsys):
    target = tmp_path / "clean"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    args = ["verify-data", "--dataset", "fashionsynth", "--root", str(dataset), "--no-decode",
            "--write-clean", str(target)]
    rc, err = run(capsys, "verify-data --write-clean a non-empty folder", *args)
    assert rc == 2 and "is not empty and was not written by verify-data --write-clean" in err
    assert cli.main(args + ["--overwrite"]) == 0
    assert cli.main(args) == 0  # its own earlier output now
    assert (target / "keep.txt").read_text() == "keep" and (target / "filenames_train.txt").is_file()


# ------------------------------------------------------------------------------ no silently wrong number


def test_verify_reports_empty_and_contradictory_split_files_by_line(dataset, tmp_path, capsys):
    root = copy_dataset(dataset, tmp_path / "ds")
    (root / "query_test.txt").write_bytes(b"")
    lines = (root / "query_valid.txt").read_text().splitlines()
    image, attribute, value = (int(t) for t in lines[1].split()[:3])
    meta = json.loads((root / "meta.json").read_text())
    nvals = meta["ATTRIBUTES_NUM"][meta["ATTRIBUTES"][attribute]]
    lines[1] = f"{image} {attribute} {(value + 1) % nvals}"
    (root / "query_valid.txt").write_text("\n".join(lines) + "\n")
    rc, out = run(capsys, "verify-data on an empty query_test.txt and a contradicting query", "verify-data",
                  "--dataset", "fashionsynth", "--root", str(root), "--no-decode")
    assert rc == 2 and "error: 2 problem(s) in the fashionsynth dataset" in out
    assert f"{root / 'query_test.txt'}:1: the file is empty" in out
    assert f"{root / 'query_valid.txt'}:2: image {image} attribute {attribute}: value {(value + 1) % nvals} " \
           f"contradicts label_valid.txt (value {value})" in out
    (root / "query_test.txt").write_bytes((dataset / "query_test.txt").read_bytes())
    (root / "query_valid.txt").write_bytes((dataset / "query_valid.txt").read_bytes())
    assert cli.main(["verify-data", "--dataset", "fashionsynth", "--root", str(root), "--no-decode"]) == 0


def test_verify_reports_an_empty_training_split(dataset, tmp_path, capsys):
    root = copy_dataset(dataset, tmp_path / "ds")
    for name in ("filenames_train.txt", "label_train.txt"):
        (root / name).write_bytes(b"")
    rc, out = run(capsys, "verify-data on zero-byte filenames_train.txt + label_train.txt", "verify-data",
                  "--dataset", "fashionsynth", "--root", str(root), "--no-decode")
    assert rc == 2 and "OK" not in out and f"({root / 'filenames_train.txt'}:1)" in out
    for name in ("filenames_train.txt", "label_train.txt"):
        assert f"{root / name}:1: the file is empty" in out


def _doctored(run_dir: Path, name: str, stopped: str | None, scale: float) -> Path:
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    ckpt["stopped"] = stopped
    ckpt["model_state"] = {k: v * scale if v.is_floating_point() else v for k, v in ckpt["model_state"].items()}
    torch.save(ckpt, run_dir / name)
    return run_dir / name


def test_evaluate_refuses_a_stopped_run(run_dir, capsys):
    path = _doctored(run_dir, "stopped.pt", "non-finite loss (nan) at epoch 1, step 2", 1e30)
    rc, err = run(capsys, "evaluate a checkpoint of a stopped run", "evaluate", "--checkpoint", str(path))
    assert rc == 2 and f"comes from a run that stopped (non-finite loss (nan) at epoch 1, step 2)" in err
    assert f"({path})" in err and "fix:" in err and not list(run_dir.glob("metrics_stopped*"))


def test_evaluate_refuses_non_finite_embeddings(run_dir, capsys):
    path = _doctored(run_dir, "overflow.pt", None, 1e30)
    rc, err = run(capsys, "evaluate weights that give NaN embeddings", "evaluate", "--checkpoint", str(path))
    assert rc == 2 and "embeddings on the test split are not finite" in err and f"({path})" in err


def test_evaluate_rebuilds_the_recorded_dataset_or_refuses(run_dir, dataset, tmp_path, capsys):
    first = tmp_path / "first.json"
    assert cli.main(["evaluate", "--checkpoint", str(run_dir / "best.pt"), "--out", str(first)]) == 0
    moved = dataset.with_name("fs_moved")
    dataset.rename(moved)  # the training folder is gone: rebuilt from the recorded config
    try:
        again = tmp_path / "again.json"
        assert cli.main(["evaluate", "--checkpoint", str(run_dir / "best.pt"), "--out", str(again)]) == 0
        assert "rebuilding FashionSynth" in capsys.readouterr().err
        assert json.loads(again.read_text())["map"] == json.loads(first.read_text())["map"]
    finally:
        moved.rename(dataset)
    other = synth.make_fashionsynth(tmp_path / "seed1", seed=1, num_images=200, image_size=32, processes=1)
    rc, err = run(capsys, "evaluate on another dataset than the training one", "evaluate", "--checkpoint",
                  str(run_dir / "best.pt"), "--root", str(other))
    assert rc == 2 and "the dataset is not the one the model was trained on: seed: 0 (training) vs 1" in err


def test_evaluate_names_an_empty_query_file(run_dir, dataset, tmp_path, capsys):
    root = copy_dataset(dataset, tmp_path / "ds")
    (root / "query_test.txt").write_bytes(b"")
    rc, err = run(capsys, "evaluate with an empty query_test.txt", "evaluate", "--checkpoint",
                  str(run_dir / "best.pt"), "--root", str(root))
    assert rc == 2 and f"({root / 'query_test.txt'}:1)" in err and "RuntimeError" not in err


def test_metrics_refuse_empty_inputs():
    none = torch.zeros(0, dtype=torch.long)
    with pytest.raises(ValueError, match="at least one query and one candidate, got 0 queries"):
        metrics.relevant_counts(none, none, torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="got 1 queries and 0 candidates"):
        metrics.mean_average_precision(torch.ones(1, 4), [0], [1], torch.zeros(0, 4), none, none)


# ------------------------------------------------------------------------------ one error style


@pytest.mark.parametrize("case,argv,message,where", [
    ("train --model nope", ["--model", "nope", "--root", "DATASET"], "error: unknown model 'nope'",
     "(argument --model nope)"),
    ("train --data nope", ["--model", "asen", "--data", "nope"], "error: unknown dataset 'nope'",
     "(argument --data nope)"),
])
def test_train_names_the_bad_argument(dataset, capsys, tmp_path, case, argv, message, where):
    argv = [str(dataset) if a == "DATASET" else a for a in argv]
    rc, err = run(capsys, case, "train", *argv, "--out", str(tmp_path / "run"))
    assert rc == 2 and message in err and where in err and "fix:" in err and "Traceback" not in err


def test_train_names_the_list_line_of_a_missing_or_corrupt_image(dataset, tmp_path, capsys):
    root = copy_dataset(dataset, tmp_path / "ds")
    import shutil

    shutil.rmtree(root / "cache")  # images are read from the files, as for a real dataset
    names = (root / "filenames_train.txt").read_text().splitlines()
    args = ["train", "--model", "asen", "--root", str(root), "--epochs", "1", "--steps-per-epoch", "1",
            "--batch-size", "120"]  # every training image in the one step
    (root / names[6]).unlink()
    rc, err = run(capsys, "train with a missing image", *args, "--out", str(tmp_path / "a"))
    assert rc == 2 and "is missing" in err and f"({root / 'filenames_train.txt'}:7)" in err
    (root / names[6]).write_bytes((dataset / names[6]).read_bytes())
    (root / names[9]).write_bytes(b"not a png")
    rc, err = run(capsys, "train with a corrupt image", *args, "--out", str(tmp_path / "b"))
    assert rc == 2 and "cannot decode image" in err and f"({root / 'filenames_train.txt'}:10)" in err


def test_train_refuses_another_runs_checkpoint(run_dir, dataset, capsys):
    before = checksums(run_dir)
    rc, err = run(capsys, "train into another run's folder", "train", "--model", "csn", "--root", str(dataset),
                  "--out", str(run_dir), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8")
    assert rc == 2 and "checkpoint of another run configuration" in err and f"({run_dir / 'last.pt'})" in err
    assert {k: v for k, v in checksums(run_dir).items() if k in before} == before


def test_a_run_killed_before_its_first_checkpoint_says_it_starts_over(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # what a run killed before its first save leaves
    assert cli.main(["train", "--model", "triplet", "--root", str(dataset), "--out", str(out), "--epochs", "1",
                     "--steps-per-epoch", "1", "--batch-size", "8"]) == 0
    assert "stopped before its first checkpoint (no last.pt); starting from scratch" in capsys.readouterr().err


@pytest.mark.parametrize("var,value", [("FGFS_DEVICE", "gpu"), ("FGFS_PROFILE", "fast"), ("FGFS_SEED", "one")])
def test_bad_environment_variables_are_named(monkeypatch, capsys, var, value):
    monkeypatch.setenv(var, value)
    rc, err = run(capsys, f"{var}={value}", "env")
    assert rc == 2 and f"(environment variable {var})" in err and f"fix: " in err and repr(value) in err


def test_an_unavailable_device_is_named(monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.setenv("FGFS_DEVICE", "cuda")
    utils.device.cache_clear()
    try:
        rc, err = run(capsys, "FGFS_DEVICE=cuda without a GPU", "env")
    finally:
        utils.device.cache_clear()
    assert rc == 2 and "device 'cuda' is not available on this machine (environment variable FGFS_DEVICE)" in err


@pytest.mark.parametrize("case,content,message", [
    ("evaluate a missing checkpoint", None, "no such checkpoint"),
    ("evaluate a file that is not a checkpoint", b"garbage", "not a readable fgfs checkpoint"),
])
def test_evaluate_names_a_bad_checkpoint(tmp_path, capsys, case, content, message):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    rc, err = run(capsys, case, "evaluate", "--checkpoint", str(path))
    assert rc == 2 and message in err and f"({path})" in err and len(err.splitlines()) == 2


def test_any_command_gets_the_error_style_and_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    """A command added later (e.g. import-checkpoint) needs no handling of its own."""
    import types

    module = types.ModuleType("fake_command")

    def fake(argv):
        raise utils.InputError("the weights file has no ASEN keys", f"{argv[0]}:1", "give a released ASEN file")

    def buggy(argv):
        raise RuntimeError("a bug")

    module.fake, module.buggy = fake, buggy
    monkeypatch.setitem(sys.modules, "fake_command", module)
    monkeypatch.setitem(cli.COMMANDS, "import-checkpoint", ("fake_command", "fake", "test"))
    monkeypatch.setitem(cli.COMMANDS, "buggy", ("fake_command", "buggy", "test"))
    rc, err = run(capsys, "a new subcommand (import-checkpoint) raising InputError", "import-checkpoint", "w.pth")
    assert rc == 2 and err == ("error: the weights file has no ASEN keys (w.pth:1)\n"
                               "  fix: give a released ASEN file\n")
    with pytest.raises(utils.InputError):
        cli.main(["import-checkpoint", "w.pth", "--debug"])
    assert cli.main(["buggy"]) == 1
    assert "this looks like a bug in fgfs" in capsys.readouterr().err


def test_the_real_entry_point_prints_no_traceback(tmp_path):
    env = dict(os.environ, FGFS_DEVICE="gpu", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "fgfs_lib", "train", "--model", "asen", "--out",
                             str(tmp_path / "x")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: unknown device 'gpu' (environment variable FGFS_DEVICE)")
    env.pop("FGFS_DEVICE")
    result = subprocess.run([sys.executable, "-m", "fgfs_lib", "evaluate", "--checkpoint", str(tmp_path / "no.pt"),
                             "--debug"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr and "FileNotFoundError" in result.stderr

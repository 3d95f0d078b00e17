"""The configuration helpers: profile, paths, seeds, device, atomic writes."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fgfs_lib import config, utils


def test_profile_defaults_to_quick(monkeypatch):
    monkeypatch.delenv("FGFS_PROFILE", raising=False)
    assert config.load().profile == "quick"
    assert config.load().pick(quick=64, full=224) == 64


def test_full_profile_and_pick(monkeypatch):
    monkeypatch.setenv("FGFS_PROFILE", "FULL")
    cfg = config.load()
    assert cfg.full and not cfg.quick
    assert cfg.pick(quick=64, full=224) == 224
    assert cfg.figures_dir.name == "full"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FGFS_PROFILE", "fast")
    with pytest.raises(ValueError, match="unknown profile 'fast'.*quick, full"):
        config.load()


def test_bad_seed_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FGFS_SEED", "zero")
    with pytest.raises(ValueError, match="FGFS_SEED must be an integer"):
        config.load()


def test_paths_do_not_depend_on_the_working_directory(monkeypatch, tmp_path):
    for var in ("FGFS_DATA_DIR", "FGFS_OUTPUT_DIR", "FGFS_FIGURES_DIR"):
        monkeypatch.delenv(var, raising=False)
    here = config.load()
    monkeypatch.chdir(tmp_path)
    there = config.load()
    assert here == there
    assert here.data_dir.is_absolute() and here.output_dir.is_absolute()


def test_paths_follow_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("FGFS_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(tmp_path / "o"))
    cfg = config.load()
    assert cfg.data_dir == tmp_path / "d"
    assert cfg.checkpoint_dir == tmp_path / "o" / "checkpoints"


def test_seed_everything_makes_every_generator_repeat():
    def draw(gen):
        return (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item())

    first = draw(utils.seed_everything(123))
    second = draw(utils.seed_everything(123))
    third = draw(utils.seed_everything(124))
    assert first == second
    assert first != third


def test_device_is_lazy_and_forced_by_environment():
    code = (
        "import sys, fgfs_lib, fgfs_lib.utils, fgfs_lib.config;"
        "assert 'torch.cuda' not in sys.modules or not __import__('torch').cuda.is_initialized();"
        "print(fgfs_lib.utils.device())"
    )
    env = {**os.environ, "FGFS_DEVICE": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "cpu"


def test_env_report_names_versions_device_and_profile():
    report = utils.env_report(config.load(profile="quick"))
    assert report["torch"] == torch.__version__
    assert report["profile"] == "quick"
    assert report["device"] in {"cpu", "cuda", "mps"}
    assert "torch" in utils.format_report(report)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    utils.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with utils.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_directory_replaces_only_its_own_files(tmp_path):
    target = tmp_path / "ds"
    with utils.atomic_path(target, directory=True, command="make-data") as tmp:
        (tmp / "a.txt").write_text("1")
    (target / "notes.txt").write_text("the user's")
    with utils.atomic_path(target, directory=True, command="make-data") as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == [utils.MANIFEST, "b.txt", "notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_progress_is_silent_in_ci(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    assert utils.progress_disabled()
    assert list(utils.progress(range(3), desc="x")) == [0, 1, 2]
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_cli_lists_commands_and_rejects_unknown(capsys):
    from fgfs_lib import cli

    assert cli.main([]) == 0
    assert "make-data" in capsys.readouterr().out
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def test_figure_names_need_the_notebook_number(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from fgfs_lib import viz

    monkeypatch.setenv("FGFS_FIGURES_DIR", str(tmp_path))
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="notebook number"):
        viz.save(fig, "samples")
    path = viz.save(fig, "00_samples")
    assert path == tmp_path / "00_samples.png" and path.stat().st_size > 0
    plt.close(fig)

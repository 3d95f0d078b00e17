"""Shared pytest set-up: say which profile the run uses, so a CI log proves it ran quick."""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


def pytest_report_header(config):
    from fgfs_lib import config as fgfs_config

    cfg = fgfs_config.load()
    return [
        f"fgfs profile: {cfg.profile} (FGFS_PROFILE={os.environ.get('FGFS_PROFILE', '<unset>')}, "
        f"CI={os.environ.get('CI', '<unset>')})",
        f"fgfs data dir: {cfg.data_dir}; outputs: {cfg.output_dir}",
    ]


@pytest.fixture(autouse=True)
def one_thread():
    """Unit tests use tiny tensors: one thread is faster than two spinning on a small machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

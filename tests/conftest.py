"""Shared pytest set-up: say which profile the run uses, so a CI log proves it ran quick."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")


def pytest_report_header(config):
    from fgfs_lib import config as fgfs_config

    cfg = fgfs_config.load()
    return [
        f"fgfs profile: {cfg.profile} (FGFS_PROFILE={os.environ.get('FGFS_PROFILE', '<unset>')}, "
        f"CI={os.environ.get('CI', '<unset>')})",
        f"fgfs data dir: {cfg.data_dir}; outputs: {cfg.output_dir}",
    ]

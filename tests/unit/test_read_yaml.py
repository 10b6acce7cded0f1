"""include.schema.read_yaml keeps the parse of each text it has read (the ML monitor reads its
configurations on every request): a reader never sees another caller's changes, nor an old text."""

from __future__ import annotations

import os

import pytest

from include.config import ConfigError
from include.schema import read_yaml


def test_a_caller_that_changes_what_it_got_changes_nobody_elses_copy(tmp_path):
    path = tmp_path / "training.yaml"
    path.write_text("gate:\n  margin: 0.005\nmodels: [logistic, xgboost]\n")
    first = read_yaml(path)
    first["gate"]["margin"] = -1
    first["models"].append("mlp")
    assert read_yaml(path) == {"gate": {"margin": 0.005}, "models": ["logistic", "xgboost"]}


def test_a_rewritten_file_is_read_again_even_at_the_same_size_and_time(tmp_path):
    path = tmp_path / "monitoring.yaml"
    path.write_text("psi_warn: 0.1\n")
    assert read_yaml(path) == {"psi_warn": 0.1}
    stat = path.stat()
    path.write_text("psi_warn: 0.2\n")  # same size; the same mtime too, below
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert read_yaml(path) == {"psi_warn": 0.2}


def test_a_broken_text_fails_every_time_after_a_good_one(tmp_path):
    path = tmp_path / "training.yaml"
    path.write_text("gate: {margin: 0.005}\n")
    assert read_yaml(path) == {"gate": {"margin": 0.005}}
    path.write_text("gate: {margin: 0.005}\ngate: {margin: 0.1}\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="duplicate key 'gate'"):
            read_yaml(path)

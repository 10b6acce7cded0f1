"""The training run's choice of model families (the DAG's ``models`` param)."""

from __future__ import annotations

import pytest

from include.training.config import parse_training_config
from include.training.pipeline import prepare
from tests.training_config import small_config_dict


def test_an_unknown_family_fails_before_any_data_is_read(tmp_path):
    cfg = parse_training_config(small_config_dict())
    configured = [m.name for m in cfg.models]
    with pytest.raises(ValueError, match=r"models \['boosted_unicorn'\] are not in the training configuration"):
        prepare("2026-03-01", cfg, root=tmp_path / "no-lake", models=["boosted_unicorn", configured[0]])

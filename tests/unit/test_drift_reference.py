"""Reference distributions stored with a model version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.drift.reference import ReferenceDistribution, fit_distribution, fit_references


def test_numeric_reference_uses_quantile_bins():
    values = np.arange(1, 1001, dtype=float)
    ref = fit_distribution(values, n_bins=10)
    assert ref.kind == "numeric" and ref.count == 1000
    assert ref.edges == pytest.approx(np.quantile(values, np.linspace(0.1, 0.9, 9)))
    assert ref.proportions == pytest.approx([0.1] * 10)
    # values beyond the reference range land in the open end bins
    assert ref.bin_counts([-5.0, 5_000.0, np.nan]).tolist() == [1] + [0] * 8 + [1]


def test_binary_flags_are_categorical():
    ref = fit_distribution([0, 1, 1, 1, np.nan])
    assert ref.kind == "categorical" and ref.categories == [0.0, 1.0]
    assert ref.proportions == pytest.approx([0.25, 0.75])
    assert ref.bin_counts([1, 1, 2]).tolist() == [0, 2]  # an unseen category is not in any bin


def test_constant_column_and_round_trip():
    ref = fit_distribution([3.5] * 20)
    assert ref.kind == "numeric" and sum(ref.proportions) == pytest.approx(1.0)
    assert ReferenceDistribution.from_dict(ref.as_dict()) == ref


@pytest.mark.parametrize("values", [[], [np.nan, np.nan]])
def test_no_values_is_an_error(values):
    with pytest.raises(ValueError, match="no values"):
        fit_distribution(values)


def test_fit_references_per_column():
    frame = pd.DataFrame({"a": np.linspace(0, 1, 100), "flag": [0, 1] * 50})
    refs = fit_references(frame, ["a", "flag"])
    assert refs["a"]["kind"] == "numeric" and refs["flag"]["kind"] == "categorical"


@pytest.mark.parametrize("n_bins", [10, 100])  # 9 edges: one comparison per edge; 99: searchsorted
def test_bin_counts_match_a_binary_search_of_every_value(n_bins):
    rng = np.random.default_rng(6)
    ref = fit_distribution(np.round(rng.lognormal(0, 1, 20_000), 2), n_bins=n_bins)
    values = np.concatenate([np.round(rng.lognormal(0.1, 1, 50_000), 2), ref.edges,  # values on the edges
                             [np.nan] * 5, [np.inf, -np.inf]])
    finite = values[~np.isnan(values)]
    want = np.bincount(np.searchsorted(ref.edges, finite, side="left"), minlength=len(ref.edges) + 1)
    assert ref.bin_counts(values).tolist() == want.tolist()


def test_sample_is_stored_sorted():
    ref = fit_distribution(np.random.default_rng(7).normal(0, 1, 20_000))
    assert len(ref.sample) == 5_000 and ref.sample == sorted(ref.sample)

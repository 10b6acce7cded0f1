"""PSI and KS against hand-computed values and scipy, and their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from include.drift.reference import ReferenceDistribution, fit_distribution
from include.drift.stats import PSI_EPSILON, ks, psi, psi_from_proportions


def test_psi_hand_computed():
    # (0.3-0.5)ln(0.3/0.5) + (0.7-0.5)ln(0.7/0.5) = 0.2*ln(5/3)... computed term by term:
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert psi_from_proportions([0.5, 0.5], [0.3, 0.7]) == pytest.approx(expected)
    assert expected == pytest.approx(0.1695, abs=1e-4)


def test_psi_empty_bin_uses_epsilon():
    expected = (PSI_EPSILON - 0.2) * math.log(PSI_EPSILON / 0.2) + (1.0 - 0.8) * math.log(1.0 / 0.8)
    assert psi_from_proportions([0.2, 0.8], [0.0, 1.0]) == pytest.approx(expected)


def test_psi_levels_on_numeric_reference():
    rng = np.random.default_rng(1)
    ref = fit_distribution(rng.normal(0, 1, 20_000))
    assert psi(ref, rng.normal(0, 1, 20_000)).level == "ok"
    shifted = psi(ref, rng.normal(0.5, 1, 20_000))
    assert shifted.level == "alert" and shifted.psi > 0.2
    assert sum(shifted.current_proportions) == pytest.approx(1.0)


def test_psi_categorical_and_unseen_category():
    ref = fit_distribution([0] * 80 + [1] * 20)
    same = psi(ref, [0] * 8 + [1] * 2)
    assert same.psi == pytest.approx(0.0) and same.level == "ok"
    unseen = psi(ref, [0] * 8 + [2] * 2)  # category 2 was never seen: an extra bin, reference epsilon
    cur, refp = [0.8, 0.0, 0.2], [0.8, 0.2, 0.0]
    assert unseen.current_proportions == pytest.approx(cur)
    assert unseen.psi == pytest.approx(psi_from_proportions(refp, cur)) and unseen.level == "alert"


@pytest.mark.parametrize("values", [[], [np.nan, np.nan]])
def test_empty_or_all_nan_is_no_data_not_drift(values):
    ref = fit_distribution([1.0, 2.0, 3.0])
    p = psi(ref, values)
    assert math.isnan(p.psi) and p.level == "no data" and p.n == 0
    k = ks(ref, values)
    assert math.isnan(k.statistic) and not k.drifted


def test_constant_reference_and_current():
    ref = fit_distribution([5.0] * 100)
    assert psi(ref, [5.0] * 50).psi == pytest.approx(0.0)
    assert psi(ref, [9.0] * 50).level == "alert"
    assert ks(ref, [5.0] * 50).statistic == 0.0


def test_ks_matches_scipy_and_hand_computed():
    ref = ReferenceDistribution("numeric", 4, [1.0], sample=[1.0, 2.0, 3.0, 4.0])
    # ECDFs of {1,2,3,4} and {3,4,5,6}: the largest gap is 0.5 (at 2 and at 4)
    result = ks(ref, [3.0, 4.0, 5.0, 6.0])
    assert result.statistic == pytest.approx(0.5)
    assert result.p_value == pytest.approx(ks_2samp([1, 2, 3, 4], [3, 4, 5, 6]).pvalue)

    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 3_000), rng.normal(0.05, 1, 50_000)
    got = ks(fit_distribution(a), b)
    want = ks_2samp(a, b)
    assert (got.statistic, got.p_value) == (pytest.approx(want.statistic), pytest.approx(want.pvalue))


def test_ks_needs_the_statistic_as_well_as_the_p_value():
    rng = np.random.default_rng(3)
    ref = fit_distribution(rng.normal(0, 1, 5_000))
    tiny_shift = ks(ref, rng.normal(0.06, 1, 2_000_000))  # p-value tiny with this many rows, effect small
    assert tiny_shift.p_value < 0.05 and tiny_shift.statistic < 0.1 and not tiny_shift.drifted
    assert ks(ref, rng.normal(1.0, 1, 10_000)).drifted

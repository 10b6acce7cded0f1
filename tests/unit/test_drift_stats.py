"""PSI and KS against hand-computed values and scipy, and their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from include.drift.config import load_monitoring_config
from include.drift.reference import REFERENCE_SAMPLE, ReferenceDistribution, fit_distribution
from include.drift.stats import KS_EXACT_MAX_N, PSI_EPSILON, ks, ks_statistic, psi, psi_from_proportions

CFG = load_monitoring_config()  # the shipped thresholds (the file is their only source), passed as monitor.py passes them


def psi_(ref, values):
    return psi(ref, values, warn=CFG.psi_warn, alert=CFG.psi_alert)


def ks_(ref, values):
    return ks(ref, values, p_threshold=CFG.ks_p_value, statistic_threshold=CFG.ks_statistic)


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
    assert psi_(ref, rng.normal(0, 1, 20_000)).level == "ok"
    shifted = psi_(ref, rng.normal(0.5, 1, 20_000))
    assert shifted.level == "alert" and shifted.psi > 0.2
    assert sum(shifted.current_proportions) == pytest.approx(1.0)


def test_psi_categorical_and_unseen_category():
    ref = fit_distribution([0] * 80 + [1] * 20)
    same = psi_(ref, [0] * 8 + [1] * 2)
    assert same.psi == pytest.approx(0.0) and same.level == "ok"
    unseen = psi_(ref, [0] * 8 + [2] * 2)  # category 2 was never seen: an extra bin, reference epsilon
    cur, refp = [0.8, 0.0, 0.2], [0.8, 0.2, 0.0]
    assert unseen.current_proportions == pytest.approx(cur)
    assert unseen.psi == pytest.approx(psi_from_proportions(refp, cur)) and unseen.level == "alert"


@pytest.mark.parametrize("values", [[], [np.nan, np.nan]])
def test_empty_or_all_nan_is_no_data_not_drift(values):
    ref = fit_distribution([1.0, 2.0, 3.0])
    p = psi_(ref, values)
    assert math.isnan(p.psi) and p.level == "no data" and p.n == 0
    k = ks_(ref, values)
    assert math.isnan(k.statistic) and not k.drifted


def test_constant_reference_and_current():
    ref = fit_distribution([5.0] * 100)
    assert psi_(ref, [5.0] * 50).psi == pytest.approx(0.0)
    assert psi_(ref, [9.0] * 50).level == "alert"
    assert ks_(ref, [5.0] * 50).statistic == 0.0


def test_ks_matches_scipy_and_hand_computed():
    ref = ReferenceDistribution("numeric", 4, [1.0], sample=[1.0, 2.0, 3.0, 4.0])
    # ECDFs of {1,2,3,4} and {3,4,5,6}: the largest gap is 0.5 (at 2 and at 4)
    result = ks_(ref, [3.0, 4.0, 5.0, 6.0])
    assert result.statistic == pytest.approx(0.5)
    assert result.p_value == pytest.approx(ks_2samp([1, 2, 3, 4], [3, 4, 5, 6]).pvalue)

    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 3_000), rng.normal(0.05, 1, 50_000)
    got = ks_(fit_distribution(a), b)
    want = ks_2samp(a, b)
    assert (got.statistic, got.p_value) == (pytest.approx(want.statistic), pytest.approx(want.pvalue))


def test_ks_needs_the_statistic_as_well_as_the_p_value():
    rng = np.random.default_rng(3)
    ref = fit_distribution(rng.normal(0, 1, 5_000))
    tiny_shift = ks_(ref, rng.normal(0.06, 1, 2_000_000))  # p-value tiny with this many rows, effect small
    assert tiny_shift.p_value < 0.05 and tiny_shift.statistic < 0.1 and not tiny_shift.drifted
    assert ks_(ref, rng.normal(1.0, 1, 10_000)).drifted


def test_thresholds_are_keyword_only_without_defaults():
    ref = fit_distribution(np.arange(100.0))
    for call in (lambda: psi(ref, [1.0]), lambda: psi(ref, [1.0], 0.1, 0.2),
                 lambda: ks(ref, [1.0]), lambda: ks(ref, [1.0], 0.05, 0.1)):
        with pytest.raises(TypeError):
            call()


# --- KS from counts: the statistic and p-value of scipy's ks_2samp, to 1e-12 and 1e-9 relative --------

def _cases():
    """(name, reference sample, day) pairs: ties, discrete values, tiny days, day sizes 1..200k,
    identical and disjoint samples, and many random ones."""
    rng = np.random.default_rng(15)
    normal_ref = rng.normal(0, 1, REFERENCE_SAMPLE)
    discrete_ref = rng.poisson(3, REFERENCE_SAMPLE).astype(float)
    for n in (1, 2, 3, 7, 50, 999, 5_000, 9_999, KS_EXACT_MAX_N, KS_EXACT_MAX_N + 1, 20_000, 200_000):
        yield f"normal n={n}", normal_ref, rng.normal(0.03, 1.1, n)
        yield f"discrete n={n}", discrete_ref, rng.poisson(3.2, n).astype(float)
        yield f"drawn from the sample n={n}", normal_ref, rng.choice(normal_ref, n)
    yield "identical", normal_ref, normal_ref.copy()
    yield "identical, tiled", normal_ref, np.tile(normal_ref, 3)
    yield "disjoint above", normal_ref, rng.normal(100, 1, 50_000)
    yield "disjoint below", normal_ref, rng.normal(-100, 1, 30)
    yield "disjoint below, large", normal_ref, rng.normal(-100, 1, 30_000)
    yield "constant day on a sample value", discrete_ref, np.full(40_000, 3.0)
    yield "constant day between sample values", discrete_ref, np.full(12_000, 2.5)
    yield "interleaved", np.arange(0.0, 5_000.0), np.arange(-0.5, 20_000.0, 0.5)
    yield "tiny reference", np.array([1.0, 1.0, 2.0]), rng.integers(0, 4, 15_000).astype(float)
    yield "one-value reference", np.array([0.0]), rng.normal(0, 1, 11_000)
    yield "infinities", np.append(normal_ref, [np.inf, -np.inf]), np.append(rng.normal(0, 1, 15_000), np.inf)
    for i in range(120):  # random sizes, shapes and amounts of ties
        n_ref = int(rng.choice([1, 5, 300, REFERENCE_SAMPLE]))
        n_day = int(rng.integers(1, 200_001)) if i % 2 else int(rng.integers(1, 3 * KS_EXACT_MAX_N))
        decimals = int(rng.integers(0, 4))  # 0: heavy ties between and within the samples
        ref = np.round(rng.lognormal(0, 1, n_ref) * 10, decimals)
        day = np.round(rng.lognormal(rng.normal(0, 0.2), rng.uniform(0.8, 1.2), n_day) * 10, decimals)
        yield f"random {i} ({n_ref}, {n_day}, {decimals} decimals)", ref, day


CASES = list(_cases())


@pytest.mark.parametrize("name,sample,day", CASES, ids=[c[0] for c in CASES])
def test_ks_equals_scipy_ks_2samp(name, sample, day):
    shuffled = np.random.default_rng(0).permutation(sample)  # references stored before sorting was kept
    got = ks_(ReferenceDistribution("numeric", len(sample), [1.0], sample=shuffled.tolist()), day)
    want = ks_2samp(sample, day)
    assert got.n == len(day)
    assert abs(got.statistic - want.statistic) <= 1e-12, name
    assert math.isclose(got.p_value, want.pvalue, rel_tol=1e-9, abs_tol=0.0), (name, got.p_value, want.pvalue)
    # the verdict is scipy's numbers against the thresholds, as before
    assert got.drifted == bool(want.pvalue < CFG.ks_p_value and want.statistic > CFG.ks_statistic)


@pytest.mark.parametrize("name,sample,day", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_ks_statistic_from_counts_at_every_size(name, sample, day):
    """The count-based statistic itself, also below the sizes where ks() lets scipy compute it (there
    scipy rounds D to a multiple of 1/lcm(n1, n2) for its exact p-value: hence 1e-12, not ==)."""
    want = ks_2samp(sample, day).statistic
    assert abs(ks_statistic(np.sort(sample), np.sort(day)) - want) <= 1e-12, name


def test_ks_statistic_is_bit_identical_in_the_asymptotic_regime():
    rng = np.random.default_rng(4)
    sample = np.sort(rng.normal(0, 1, REFERENCE_SAMPLE))
    for day in (rng.normal(0.02, 1, 300_000), np.round(rng.normal(0, 1, 100_000), 1), rng.choice(sample, 50_000)):
        got = ks_(ReferenceDistribution("numeric", len(sample), [1.0], sample=sample.tolist()), day)
        want = ks_2samp(sample, day)
        assert (got.statistic, got.p_value) == (want.statistic, want.pvalue)


def test_ks_ignores_nan_in_the_day():
    rng = np.random.default_rng(5)
    sample, day = rng.normal(0, 1, REFERENCE_SAMPLE), rng.normal(0.3, 1, 40_000)
    holed = day.copy()
    holed[::7] = np.nan
    got = ks_(ReferenceDistribution("numeric", len(sample), [1.0], sample=sample.tolist()), holed)
    want = ks_2samp(sample, holed[~np.isnan(holed)])
    assert (got.statistic, got.p_value, got.n) == (want.statistic, want.pvalue, int((~np.isnan(holed)).sum()))
    assert got.drifted

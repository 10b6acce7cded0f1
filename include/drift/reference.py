"""Reference distributions: bins fitted on a model's training window, stored with the model version
so that monitoring compares each day against exactly what the model was trained on.

- numeric columns: quantile bin edges fitted on the reference (``n_bins`` bins, open at both ends, so
  values outside the reference range land in the first or last bin);
- categorical columns (few distinct integer values, such as the 0/1 flags): one bin per category.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

DEFAULT_BINS = 10
MAX_CATEGORIES = 10
# a seeded random sample of the reference is kept for the two-sample KS test
REFERENCE_SAMPLE = 5_000
# up to this many numeric bin edges, bin counts are one comparison pass per edge (see bin_counts)
_MAX_EDGES_COMPARED = 64


@dataclass(frozen=True)
class ReferenceDistribution:
    kind: str  # "numeric" or "categorical"
    count: int
    proportions: list[float]
    edges: list[float] = field(default_factory=list)  # numeric: interior edges, bins (-inf, e0], (e0, e1], ...
    categories: list[float] = field(default_factory=list)
    sample: list[float] = field(default_factory=list)  # up to REFERENCE_SAMPLE values, sorted, for the KS test

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> ReferenceDistribution:
        # keys of other releases of this format are ignored (a model without a sample gets no KS test)
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def bin_counts(self, values) -> np.ndarray:
        """Counts of ``values`` in the reference bins (NaN ignored; unseen categories are not counted).

        NaN compares false with everything, so it falls in no bin without a filtered copy of the values.
        With few edges (the default is 9), one vectorised ``<=`` count per edge is several times faster
        than a binary search of every value (``searchsorted``), which wins only for many bins."""
        v = np.asarray(values, dtype=float)
        if self.kind == "categorical":
            return np.array([np.count_nonzero(v == c) for c in self.categories], dtype=float)
        n = v.size - np.count_nonzero(np.isnan(v))
        if len(self.edges) > _MAX_EDGES_COMPARED:
            below = np.searchsorted(self.edges, v[~np.isnan(v)], side="left")  # bin i: (e[i-1], e[i]]
            return np.bincount(below, minlength=len(self.edges) + 1).astype(float)
        at_or_below = [np.count_nonzero(v <= e) for e in self.edges]  # bins (-inf, e0], (e0, e1], ...
        return np.diff(np.array([0, *at_or_below, n], dtype=float))


def fit_distribution(values, n_bins: int = DEFAULT_BINS, max_categories: int = MAX_CATEGORIES,
                     seed: int = 0) -> ReferenceDistribution:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        raise ValueError("cannot fit a reference distribution on no values")
    distinct = np.unique(v)
    rng = np.random.default_rng(seed)
    # stored sorted: the KS test sorts it again (references stored before were not), which is then cheap
    sample_values = np.sort(v if len(v) <= REFERENCE_SAMPLE else rng.choice(v, REFERENCE_SAMPLE, replace=False)).tolist()
    if len(distinct) <= max_categories and np.all(distinct == np.round(distinct)):
        counts = np.array([np.sum(v == c) for c in distinct], dtype=float)
        return ReferenceDistribution("categorical", len(v), (counts / len(v)).tolist(),
                                     categories=distinct.tolist(), sample=sample_values)
    edges = np.unique(np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]))
    ref = ReferenceDistribution("numeric", len(v), [], edges=edges.tolist(), sample=sample_values)
    counts = ref.bin_counts(v)
    return ReferenceDistribution("numeric", len(v), (counts / len(v)).tolist(), edges=edges.tolist(),
                                 sample=sample_values)


def fit_references(frame, columns: list[str], n_bins: int = DEFAULT_BINS) -> dict[str, dict]:
    """One reference per column of ``frame``, as JSON-ready dicts."""
    return {c: fit_distribution(frame[c].to_numpy(dtype=float), n_bins).as_dict() for c in columns}

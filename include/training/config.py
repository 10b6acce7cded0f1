"""The training configuration of a pipeline (the ``training.yaml`` its spec names, in its package:
include/pipelines/<name>/training.yaml; or the file named by ``BATCHML_<PIPELINE>_TRAINING_CONFIG``,
for the default pipeline also ``BATCHML_TRAINING_CONFIG``: include/spec.py ``config_file``) as a schema: pydantic models with the types, ranges, names that must exist
(families, metrics, class weights) and rules across fields, all in this file. A file that breaks a
rule is refused before anything trains, with one line per broken rule naming the file, the key, the
value and the rule (include/schema.py).

Only pydantic and PyYAML are imported: the training DAG reads this at run time.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, BaseModel, Field, PrivateAttr, field_validator, model_validator

from include import pipelines
from include.config import ConfigError
from include.schema import STRICT, Fraction, Invalid, at_least, one_of, read_yaml, validate_config

# the default pipeline's shipped file (include.pipelines.DEFAULT)
DEFAULT_PATH = pipelines.get().shipped_config("training")
FAMILIES = ("logistic_regression", "xgboost", "lightgbm", "pytorch_mlp", "mean_ensemble")
ENSEMBLE = "mean_ensemble"  # the mean probability of other models of the file (``members``)
CLASS_WEIGHTS = ("none", "sqrt", "balanced")
# metrics of include/training/metrics.py:evaluate where higher is better: the primary metric and the floors
PRIMARY_METRICS = ("average_precision", "auc_roc", "card_precision")
WINDOW_RULE = "window needs train_days, test_days and folds >= 1 and gap_days >= 0"
# ten years a window, 52 folds: a longer one is a typo (train_days: 10000000 ran dates out of range,
# an OverflowError that was retried)
MAX_WINDOW_DAYS, MAX_FOLDS = 3660, 52
NEGATIVE_MARGIN = "a negative margin promotes a challenger worse than the champion"
# threads per model family: a fixed number, not the machine's core count, so that the same data gives
# the same models on any machine and under any load (include/training/models.py says what is pinned)
DEFAULT_THREADS, MAX_THREADS = 2, 256

Name = Annotated[str, Field(min_length=1)]
Metric = Annotated[str, one_of("metric", PRIMARY_METRICS)]


class WindowConfig(BaseModel):
    model_config = STRICT

    train_days: Annotated[int, at_least(1, WINDOW_RULE), Field(le=MAX_WINDOW_DAYS)] = 14
    gap_days: Annotated[int, at_least(0, WINDOW_RULE), Field(le=MAX_WINDOW_DAYS)] = 7
    test_days: Annotated[int, at_least(1, WINDOW_RULE), Field(le=MAX_WINDOW_DAYS)] = 7
    folds: Annotated[int, at_least(1, WINDOW_RULE), Field(le=MAX_FOLDS)] = 2


class MetricsConfig(BaseModel):
    model_config = STRICT

    primary: Metric = "average_precision"
    top_k: Annotated[int, Field(ge=1)] = 100
    missed_fraud_cost: Annotated[float, Field(gt=0)] = 1000.0
    false_alarm_cost: Annotated[float, Field(gt=0)] = 50.0


class GateConfig(BaseModel):
    model_config = STRICT

    min_improvement: Annotated[float, at_least(0, NEGATIVE_MARGIN)] = 0.005
    auc_roc_tolerance: Fraction = 0.01
    card_precision_tolerance: Fraction = 0.02
    min_eval_frauds: Annotated[int, Field(ge=0)] = 30
    floor: dict[Metric, Fraction] = Field(default_factory=lambda: {"average_precision": 0.3, "auc_roc": 0.8})
    require_approval: bool = False


# per-slice figures shown beside AUC and AP as the pipeline's business metric (include/training/metrics.py:evaluate)
BUSINESS_METRICS = ("expected_cost", "card_precision", "recall_at_threshold", "precision_at_threshold")
# slice and band names become MLflow metric names (slice_<name>_<band>_ap)
SLICE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SLICE_NAME_RULE = "must be lower-case letters, digits and _ starting with a letter (it names MLflow metrics)"


def _slice_name(value: str) -> str:
    if not SLICE_NAME.match(value):
        raise Invalid(SLICE_NAME_RULE)
    return value


SliceName = Annotated[str, AfterValidator(_slice_name)]


class SliceSpec(BaseModel):
    """One way of cutting the evaluation window: a ``column`` of the evaluation frame, or an
    ``expression`` over its columns (pandas ``DataFrame.eval``, e.g. ``tx_datetime.dt.hour``), cut at
    ``edges`` into len(edges) + 1 bands: band i holds edges[i-1] <= value < edges[i]. ``labels`` name
    the bands (default: the ranges)."""

    model_config = STRICT

    name: SliceName
    column: Annotated[str, Field(min_length=1)] | None = None
    expression: Annotated[str, Field(min_length=1)] | None = None
    edges: Annotated[tuple[float, ...], Field(strict=False, min_length=1)]
    labels: Annotated[tuple[SliceName, ...], Field(strict=False)] | None = None

    @field_validator("expression")
    @classmethod
    def _an_expression(cls, expression: str | None) -> str | None:
        if expression is None:
            return None
        if "@" in expression:
            raise Invalid("may only name columns of the evaluation frame (no @variables)")
        try:
            ast.parse(expression, mode="eval")
        except SyntaxError as exc:
            raise Invalid(f"is not an expression ({exc.msg})") from None
        return expression

    @field_validator("edges")
    @classmethod
    def _increasing(cls, edges: tuple[float, ...]) -> tuple[float, ...]:
        if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            raise Invalid("must be strictly increasing")
        return edges

    @model_validator(mode="after")
    def _one_source_and_labels(self) -> SliceSpec:
        if (self.column is None) == (self.expression is None):
            raise Invalid(f"slice {self.name!r} needs exactly one of column and expression", show_value=False)
        if self.labels is not None:
            if len(self.labels) != len(self.edges) + 1:
                raise Invalid(f"slice {self.name!r} has {len(self.edges)} edge(s), so {len(self.edges) + 1} bands: "
                              f"labels needs {len(self.edges) + 1} names, got {list(self.labels)}", show_value=False)
            if len(set(self.labels)) != len(self.labels):
                raise Invalid(f"slice {self.name!r} needs unique labels, got {list(self.labels)}", show_value=False)
        return self

    @property
    def source(self) -> str:
        return self.column if self.column is not None else self.expression  # type: ignore[return-value]

    @property
    def bands(self) -> tuple[str, ...]:
        if self.labels is not None:
            return self.labels
        cuts = [_edge(e) for e in self.edges]
        return (f"lt_{cuts[0]}", *[f"{a}_{b}" for a, b in zip(cuts, cuts[1:], strict=False)], f"ge_{cuts[-1]}")


def _edge(value: float) -> str:
    return (str(int(value)) if float(value).is_integer() else str(value)).replace("-", "m").replace(".", "p")


class SlicesConfig(BaseModel):
    """Per-slice evaluation of every candidate and the champion, and the gate on it: a challenger whose
    primary metric drops by more than ``tolerance`` below the champion's on any slice band holding at
    least ``min_positives`` frauds is refused; thinner bands are reported, not gated."""

    model_config = STRICT

    tolerance: Fraction = 0.1
    min_positives: Annotated[int, Field(ge=1)] = 50
    business_metric: Annotated[str, one_of("business metric", BUSINESS_METRICS)] = "expected_cost"
    definitions: Annotated[tuple[SliceSpec, ...], Field(strict=False)] = ()

    @field_validator("definitions")
    @classmethod
    def _unique_names(cls, definitions: tuple[SliceSpec, ...]) -> tuple[SliceSpec, ...]:
        names = [d.name for d in definitions]
        if len(set(names)) != len(names):
            raise Invalid(f"needs unique slice names, got {names}", show_value=False)
        return definitions


# the realised figures of include.warehouse.performance_days where higher is better: a shadow metric
SHADOW_METRICS = (*PRIMARY_METRICS, "precision_at_threshold", "recall_at_threshold")


class ShadowConfig(BaseModel):
    """Promotion on shadow evidence (docs/shadow.md). ``days`` = 0: a challenger the gate approves is
    promoted at once. ``days`` > 0: it is scored beside the champion (alias ``shadow``) and promoted by
    monitoring's ``review_shadow`` once it has ``days`` label-arrival days with realised figures for both
    models and at least ``min_frauds`` labelled frauds over them, if its mean ``metric`` (default: the
    primary metric) is not below the champion's by more than ``tolerance``; refused otherwise."""

    model_config = STRICT

    days: Annotated[int, Field(ge=0, le=MAX_WINDOW_DAYS)] = 0
    metric: Annotated[str, one_of("shadow metric", SHADOW_METRICS)] | None = None
    min_frauds: Annotated[int, Field(ge=1)] = 30
    tolerance: Fraction = 0.01


class TuningConfig(BaseModel):
    """The search budget is ``trials``; ``safety_timeout_seconds`` only stops a search that runs far
    longer than expected (a trial never stops midway: the cap is checked between trials). A capped
    search is logged as a warning and recorded on the run, since it depends on the machine's speed.
    ``timeout_seconds``, the name of the key when it was a budget, is still read as this cap."""

    model_config = STRICT

    trials: Annotated[int, Field(ge=1)] = 8
    safety_timeout_seconds: Annotated[float, Field(gt=0, validation_alias=AliasChoices(
        "safety_timeout_seconds", "timeout_seconds"))] = 3600.0

    @model_validator(mode="before")
    @classmethod
    def _one_name_for_the_cap(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and {"safety_timeout_seconds", "timeout_seconds"} <= raw.keys():
            raise Invalid("takes safety_timeout_seconds or its old name timeout_seconds, not both", show_value=False)
        return raw


class SearchSpace(BaseModel):
    """One searched hyperparameter: ``{low, high[, log][, int]}`` or ``{choices: [...]}``."""

    model_config = STRICT

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = Field(False, alias="int")
    choices: Annotated[list[Any], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SearchSpace:
        shown = self.model_dump(by_alias=True, exclude_unset=True)
        if self.choices is not None:
            if {"low", "high", "log", "int"} & set(shown):
                raise Invalid(f"takes either choices or low/high, got {shown}", show_value=False)
        elif self.low is None or self.high is None:
            raise Invalid(f"needs low and high (or choices), got {shown}", show_value=False)
        elif not self.low <= self.high:
            raise Invalid(f"needs low <= high, got {shown}", show_value=False)
        elif self.log and self.low <= 0:
            raise Invalid(f"needs low > 0 on a log scale, got {shown}", show_value=False)
        elif self.integer and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise Invalid(f"needs whole numbers for low and high when int is true, got {shown}", show_value=False)
        return self


class ModelSpec(BaseModel):
    model_config = STRICT

    name: Name
    family: Annotated[str, one_of("family", FAMILIES)]
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, SearchSpace] = Field(default_factory=dict)
    class_weight: Annotated[str, one_of("class_weight", CLASS_WEIGHTS)] = "sqrt"
    trials: Annotated[int, Field(ge=1)] | None = None
    # mean_ensemble only: the names of the models it averages, each fitted with its own configured
    # params and class_weight (the ensemble's own class_weight is unused)
    members: Annotated[tuple[Name, ...], Field(strict=False)] | None = None


class TrainingConfig(BaseModel):
    """training.yaml. ``source`` is the file it was read from (for messages)."""

    model_config = STRICT

    experiment: Name
    registered_model: Name
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 42
    threads: Annotated[int, Field(ge=1, le=MAX_THREADS)] = DEFAULT_THREADS
    window: WindowConfig = WindowConfig()
    metrics: MetricsConfig = MetricsConfig()
    gate: GateConfig = GateConfig()
    tuning: TuningConfig = TuningConfig()
    slices: SlicesConfig = SlicesConfig()
    shadow: ShadowConfig = ShadowConfig()
    # a list in the file (strict mode would want a Python tuple)
    models: Annotated[tuple[ModelSpec, ...], Field(strict=False)]
    _source: str = PrivateAttr(default="")

    @field_validator("models")
    @classmethod
    def _some_with_unique_names(cls, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        if not models:
            raise Invalid("needs at least one model")
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise Invalid(f"needs unique model names, got {names}", show_value=False)
        return tuple(_resolve_members(m, models) for m in models)

    @property
    def source(self) -> str:
        return self._source

    @property
    def shadow_metric(self) -> str:
        """The realised figure compared on the shadow days: ``shadow.metric``, else the primary metric."""
        return self.shadow.metric or self.metrics.primary

    @property
    def trials(self) -> int:
        return self.tuning.trials

    @property
    def safety_timeout_seconds(self) -> float:
        return float(self.tuning.safety_timeout_seconds)

    def spec(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise ConfigError(f"{self.source}: no model named {name!r}; known: {[m.name for m in self.models]}")

    def trials_for(self, spec: ModelSpec) -> int:
        return spec.trials if spec.trials is not None else self.trials


def _resolve_members(spec: ModelSpec, models: tuple[ModelSpec, ...]) -> ModelSpec:
    """An ensemble's ``params`` become its members' families, params and class weights, so that the
    estimator (include/training/models.py) is built from the spec alone, like every other family."""
    if spec.family != ENSEMBLE:
        if spec.members is not None:
            raise Invalid(f"model {spec.name!r} has members, which only a {ENSEMBLE} model takes", show_value=False)
        return spec
    by_name = {m.name: m for m in models}
    members = spec.members or ()
    if len(set(members)) < 2:
        raise Invalid(f"model {spec.name!r} ({ENSEMBLE}) needs members: at least two distinct model names",
                      show_value=False)
    for name in members:
        if name not in by_name or by_name[name].family == ENSEMBLE:
            raise Invalid(f"model {spec.name!r} names member {name!r}, which is not a model of the file "
                          f"(or is itself an ensemble); known: {[m.name for m in models if m.family != ENSEMBLE]}",
                          show_value=False)
    if spec.search or spec.params:
        raise Invalid(f"model {spec.name!r} ({ENSEMBLE}) takes no params or search: its members keep their own",
                      show_value=False)
    resolved = [{"name": n, "family": by_name[n].family, "params": dict(by_name[n].params),
                 "class_weight": by_name[n].class_weight} for n in members]
    return spec.model_copy(update={"params": {"members": resolved}})


def config_path(pipeline: str | None = None) -> Path:
    """The training file of ``pipeline`` (None: the default pipeline): the file its environment variable
    names, else its package's. Set but blank (``X=${UNSET}`` in a compose file) is unset, as for every
    BATCHML_*_CONFIG (it was read as ".", "a directory")."""
    return pipelines.get(pipeline).config_file("training")


def load_training_config(path: str | Path | None = None, *, pipeline: str | None = None) -> TrainingConfig:
    """The validated configuration of ``pipeline`` (None: the default pipeline), read from ``path`` or
    :func:`config_path`; ConfigError naming the file, key, value and rule otherwise."""
    path = Path(path) if path else config_path(pipeline)
    return parse_training_config(read_yaml(path), source=str(path))


def parse_training_config(raw: Any, source: str = "<dict>") -> TrainingConfig:
    cfg = validate_config(TrainingConfig, raw, source)
    cfg._source = source
    return cfg


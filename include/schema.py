"""Configuration files as schemas: the pieces the pydantic models of include/training/config.py and
include/drift/config.py are built from, reading a YAML file, and the translation of pydantic's
ValidationError into the project's ConfigError, one line per broken rule:

    include/training/training.yaml: 'gate.min_improvement' must be >= 0 (...), got -1.0

(file, key as a dotted path, rule, value). Imported at run time only: DAG files import include.config,
which stays on the standard library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, ValidationError

from include.config import ConfigError

# every section: typed values only ("5" is not a number, true is not 1), finite numbers, no unknown
# keys, immutable
STRICT = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Invalid(ValueError):
    """Raised by a schema's validator: ``rule`` as the message states it (\"must be >= 0\"), then
    \", got <value>\" unless ``show_value`` is False (when the rule already shows it)."""

    def __init__(self, rule: str, show_value: bool = True):
        super().__init__(rule)
        self.rule, self.show_value = rule, show_value


def read_yaml(path: Path) -> Any:
    """The parsed file (None when empty); ConfigError naming the file when it is missing or not YAML."""
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} is a directory") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


def validate_config(model, raw: Any, where: str, context: dict[str, Any] | None = None, *,
                    top_level: str = "top-level "):
    """``model.model_validate(raw)`` (an empty file is every default); ConfigError with one line per
    broken rule: ``<where>: '<dotted.key>' <rule>, got <value>``. ``top_level``: how unknown keys
    outside any section are called ("" in a file that is mostly flat)."""
    try:
        return model.model_validate({} if raw is None else raw, context=context)
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{where}: {line}" for line in _error_lines(exc, model, top_level))) from None


def _key(loc: tuple) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a dict key that failed validation
            continue
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:150] + "...(truncated)"


_TYPES = {"int": "an int", "float": "a float (a number)", "bool": "a bool (true or false)", "string": "a string",
          "tuple": "a list", "list": "a list", "dict": "a mapping of keys to values",
          "model": "a mapping of keys to values", "model_attributes": "a mapping of keys to values"}
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"), "less_than_equal": ("le", "<="),
           "less_than": ("lt", "<")}


def _rule(error: dict[str, Any]) -> tuple[str, bool]:
    """The rule an error of pydantic's broke, in the project's words, and whether to show the value."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is required", False
    if kind in ("string_too_short", "too_short"):
        n = ctx.get("min_length", 1)
        return ("is required" if kind == "string_too_short" and n == 1 else f"needs at least {n} item(s)"), True
    if kind.removesuffix("_type").removesuffix("_parsing") in _TYPES:
        return f"must be {_TYPES[kind.removesuffix('_type').removesuffix('_parsing')]}", True
    if kind == "int_from_float":
        return "must be an int", True
    if kind == "finite_number":
        return "must be a finite number", True
    if kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        bound = ctx[name]
        return f"must be {sign} {int(bound) if isinstance(bound, float) and bound.is_integer() else bound}", True
    if isinstance(ctx.get("error"), Invalid):
        return ctx["error"].rule, ctx["error"].show_value
    return error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, "), True


def _error_lines(exc, model, top_level: str) -> list[str]:
    """One line per error; unknown keys are gathered per section, with the keys it knows."""
    lines: list[str | tuple] = []  # a tuple: the section whose unknown keys go on that line
    unknown: dict[tuple, list[str]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            if loc[:-1] not in unknown:
                unknown[loc[:-1]] = []
                lines.append(loc[:-1])
            unknown[loc[:-1]].append(str(loc[-1]))
        elif not loc and error["type"] in ("model_type", "model_attributes_type", "dict_type"):
            lines.append(f"expected a mapping of keys to values, got {_shown(error['input'])}")
        else:
            rule, show = _rule(error)
            lines.append(f"'{_key(loc)}' {rule}" + (f", got {_shown(error['input'])}" if show else ""))
    out = []
    for line in lines:
        if isinstance(line, tuple):
            known = _known_keys(model, line)
            where = f" in '{_key(line)}'" if line else ""
            out.append(f"unknown {'' if line else top_level}key(s) {unknown[line]}{where}"
                       + (f"; known: {known}" if known else ""))
        else:
            out.append(line)
    return out


def _known_keys(model, loc: tuple) -> list[str]:
    """The keys the section at ``loc`` of ``model`` accepts (aliases as written in the file)."""
    from typing import get_args

    from pydantic import BaseModel

    annotation: Any = model
    for part in loc:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
            field = annotation.model_fields.get(part) or next(
                (f for f in annotation.model_fields.values() if f.alias == part), None)
            if field is None:
                return []
            annotation = field.annotation
        else:  # an item of a tuple/list, or the value of a dict
            args = [a for a in get_args(annotation) if a is not Ellipsis and a is not type(None)]
            if not args:
                return []
            annotation = args[-1]
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and not get_args(args[0]):  # X | None
            annotation = args[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    return []


def one_of(kind: str, known) -> AfterValidator:
    """A name that must exist: ``names an unknown <kind> 'x'; known: [...]``. ``known``: the names, or
    a function of the validation info returning them (None: not checked)."""
    def check(value: str, info) -> str:
        names = known(info) if callable(known) else known
        if names is not None and value not in names:
            raise Invalid(f"names an unknown {kind} {value!r}; known: {list(names)}", show_value=False)
        return value
    return AfterValidator(check)


def at_least(minimum: float, why: str = "") -> AfterValidator:
    def check(value: float) -> float:
        if value < minimum:
            raise Invalid(f"must be >= {minimum}" + (f" ({why})" if why else ""))
        return value
    return AfterValidator(check)


def lies_in(low: float, high: float, *, open_ends: bool = False) -> AfterValidator:
    """``[low, high]``, or ``(low, high)`` with ``open_ends``."""
    def check(value: float) -> float:
        if not (low < value < high if open_ends else low <= value <= high):
            raise Invalid(f"must lie in {'(' if open_ends else '['}{low}, {high}{')' if open_ends else ']'}")
        return value
    return AfterValidator(check)


Fraction = Annotated[float, lies_in(0, 1)]

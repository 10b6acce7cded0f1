"""Configuration files as schemas: the pieces the pydantic models of include/training/config.py and
include/drift/config.py are built from, reading a YAML file, and the translation of pydantic's
ValidationError into the project's ConfigError, one line per broken rule:

    include/pipelines/<name>/training.yaml: 'gate.min_improvement' must be >= 0 (...), got -1.0

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


# A configuration file is a few kB written by hand. Past these limits it is a mistake or an attack:
# /dev/zero or a log named by BATCHML_*_CONFIG, a "billion laughs" of aliases (nine lines that expand to
# 10^9 values: pydantic, the error message or MLflow's log_params would walk them all), or nesting
# deep enough to exhaust Python's recursion.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 64


def _loader():
    """PyYAML's SafeLoader, except that a key written twice in one mapping is an error (PyYAML keeps
    the last silently: a second ``gate:`` section would discard the first) and nesting is bounded.
    Keys brought in by a merge (``<<: *defaults``) may still be overridden: that is what merges are for."""
    import yaml

    class Loader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent, index):
            self._depth += 1
            try:
                if self._depth > MAX_CONFIG_DEPTH:
                    raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_CONFIG_DEPTH} levels",
                                                      self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                first: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        if key in first:
                            raise yaml.constructor.ConstructorError(
                                None, None, f"duplicate key {key!r} (first written at line "
                                f"{first[key].line + 1}); PyYAML would keep only the last one",
                                key_node.start_mark)
                        first[key] = key_node.start_mark
                    except TypeError:  # an unhashable key: SafeLoader names it below
                        pass
            return super().construct_mapping(node, deep=deep)

    return Loader


def _expanded_size(value: Any, memo: dict[int, int], open_: set[int]) -> int:
    """How many values ``value`` holds once every alias is expanded (a shared list counts each time it
    is used); ValueError when a value contains itself."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in open_:
        raise ValueError("an alias refers to a value that contains it (a value that contains itself)")
    if key not in memo:
        open_.add(key)
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        memo[key] = 1 + sum(_expanded_size(item, memo, open_) for item in items)
        open_.discard(key)
    return memo[key]


# parsed texts, by their text: reading a file is cheap, parsing it with the line-aware loader is not
_PARSED: dict[str | bytes, Any] = {}


def read_yaml(path: Path) -> Any:
    """The parsed file (None when empty); ConfigError naming the file when it is missing, not a regular
    file, too large, not UTF-8 (or UTF-16/32 with a byte-order mark), not YAML, has a key twice in one
    mapping, or aliases that expand past ``MAX_CONFIG_VALUES`` values or into themselves."""
    import copy
    import errno
    import stat

    import yaml

    try:
        mode = path.stat().st_mode  # follows a link: a mounted configuration is often one
        if stat.S_ISDIR(mode):
            raise ConfigError(f"configuration file {path} is a directory")
        if not stat.S_ISREG(mode):  # a FIFO would block, /dev/zero never end
            raise ConfigError(f"configuration file {path} is not a regular file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except PermissionError:
        raise ConfigError(f"configuration file {path} cannot be read by this user (permission denied)") from None
    except OSError as exc:  # a link loop, a file where a folder should be, a name too long: the path is wrong
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENAMETOOLONG):
            raise  # an I/O error of the storage: retried
        raise ConfigError(f"configuration file {path} cannot be opened: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"configuration file {path} is larger than {MAX_CONFIG_BYTES} bytes: not a configuration")
    if not data.startswith((b"\xff\xfe", b"\xfe\xff")):  # else UTF-16/32 with its BOM: PyYAML decodes it
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise ConfigError(f"{path}: not UTF-8 text: byte {data[exc.start]:#04x} at line {line} "
                              f"(offset {exc.start}); save the file as UTF-8") from None
    if data in _PARSED:  # the same text parsed before (the ML monitor reads its configurations per request)
        return copy.deepcopy(_PARSED[data])
    try:
        raw = yaml.load(data, Loader=_loader())  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    try:
        size = _expanded_size(raw, {}, set())
    except RecursionError:
        raise ConfigError(f"{path}: aliases nest values deeper than Python can follow") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if size > MAX_CONFIG_VALUES:
        raise ConfigError(f"{path}: its aliases (*name) expand to {size:,} values, more than {MAX_CONFIG_VALUES:,}: "
                          "not a configuration (a 'billion laughs')")
    if len(_PARSED) >= 32:
        _PARSED.clear()
    _PARSED[data] = raw
    return copy.deepcopy(raw)  # the caller may change what it gets


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

"""The pipelines of the platform, one package each: ``include/pipelines/<name>/`` holds the pipeline's
spec (``spec.py``, ``SPEC``: include/spec.py), its data source and its feature logic. Guide:
docs/adding-a-pipeline.md.

    from include import pipelines
    pipelines.names()          # the pipelines, sorted
    pipelines.get("<name>")    # the PipelineSpec of include/pipelines/<name>/spec.py
    pipelines.get()            # the spec of the default pipeline (DEFAULT)

Discovery lists the sub-packages of this folder that have a ``spec.py`` and imports only that module
(pydantic; nothing heavy), so DAG files may call it while they are parsed.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.spec import PipelineSpec

_HERE = Path(__file__).resolve().parent
# The pipeline a platform call without a ``pipeline`` argument means (the reference pipeline, the one the
# demo runs by default); the only place the platform's default names it.
DEFAULT = "fraud"


class UnknownPipeline(KeyError):
    """No package include/pipelines/<name>/ with a spec.py; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def names() -> list[str]:
    """The pipelines that declare a spec, sorted."""
    return sorted(p.parent.name for p in _HERE.glob("*/spec.py") if (p.parent / "__init__.py").exists())


def get(name: str | None = None) -> PipelineSpec:
    """The spec of pipeline ``name`` (``include.pipelines.<name>.spec:SPEC``; None: :data:`DEFAULT`);
    UnknownPipeline (a KeyError) naming the known pipelines when there is no such package, ConfigError
    when its spec is invalid."""
    return _get(name or DEFAULT)


@cache
def _get(name: str) -> PipelineSpec:
    from include.spec import PipelineSpec

    known = names()
    if name not in known:
        raise UnknownPipeline(f"no pipeline named {name!r}; known: {', '.join(known)} (include/pipelines/<name>/spec.py)")
    module = importlib.import_module(f"include.pipelines.{name}.spec")
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, PipelineSpec):
        raise TypeError(f"include/pipelines/{name}/spec.py must define SPEC = include.spec.declare({{...}}), "
                        f"got {type(spec).__name__}")
    if spec.name != name:
        raise ValueError(f"include/pipelines/{name}/spec.py declares name {spec.name!r}: it must be {name!r}, "
                         "its package's name")
    return spec

"""Loading params.yaml and checking it: the JSON schema, then the cross-references.

The schema, params.schema.yaml, lives beside this module: it is the contract of the code that
reads params.yaml, so the library does not depend on the workflow folder. The Snakefile (at
workflow start) and the planner (workflow/plan.py) validate through here; a stage reads only its
job file (Params.for_job).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stages.config.references import check_references
from stages.utils.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parent / "params.schema.yaml"
# libyaml's parser where PyYAML was built with it (the PyPI wheels are): the plan loads
# params.yaml and the schema at every Snakemake start, 0.5 s with the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found; pass --params with the path of params.yaml")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax at the line shown") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _best_message(error: jsonschema.ValidationError) -> str:
    # A oneOf failure (a scaled value) hides the useful sub-error; report the closest one.
    # The branch that got furthest into the value (deepest path, then not a mere type
    # mismatch) is the one the user meant.
    if error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    value = repr(error.instance)
    value = value if len(value) <= 80 else value[:77] + "..."
    return f"{_key_path(error)}: {error.message} (value: {value})"


def validate(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Check ``params`` against the JSON schema and its cross-references.

    Raises :class:`ConfigError` naming the offending key and value.
    """
    schema = yaml.load(SCHEMA_PATH.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  - {_best_message(e)}" for e in errors[:10]]
        raise ConfigError(
            f"{source}: {len(errors)} invalid value(s):\n"
            + "\n".join(lines)
            + f"\nThe allowed keys and values are in {SCHEMA_PATH.relative_to(SCHEMA_PATH.parents[2])}."
        )
    check_references(params, source)

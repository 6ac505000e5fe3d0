"""Input files are checked against a schema (pydantic) before use; a failure becomes one line
that names the file, the field and the value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError

from studio.core.errors import InputError
from studio.core.io import read_text

T = TypeVar("T", bound=BaseModel)
MiB = 2**20


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


WHOLE = "whole_record"  # the error type of a check across a record's fields


def record_error(message: str) -> Exception:
    """The error a model validator raises about a combination of fields: ``describe``
    gives its message without echoing the whole record back."""
    from pydantic_core import PydanticCustomError

    return PydanticCustomError(WHOLE, message)


def describe(e: ValidationError) -> str:
    """The first problem of a validation error as 'field.sub: message (got value)'."""
    errs = e.errors(include_url=False)
    err = errs[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = (
        ""  # WHOLE: a check of a whole record, whose message names the fields
        if err["type"] in ("missing", "extra_forbidden", WHOLE)
        else f" (got {_short(err.get('input'))})"
    )
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    more = f"; and {len(errs) - 1} more problem(s)" if len(errs) > 1 else ""
    return f"{loc}: {msg}{got}{more}"


def parse(cls: type[T], data: Any, where: str, error: type[InputError] = InputError) -> T:
    """``cls`` validated from ``data``; ``where`` names the file (or option) for the message."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise error(f"{where}: {describe(e)}") from None


def load_json(path, what: str, limit: int = 16 * MiB, error: type[InputError] = InputError):
    """A JSON (or, for .yaml/.yml, YAML) file as Python data, or one line saying why not."""
    path = Path(path)
    text = read_text(path, what, limit)
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise error(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(
            f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be a {what}") from None


def expect_format(
    d: Any, fmt: str, what: str, where: str, versions=(1,), error: type[InputError] = InputError
) -> None:
    """Before the schema: is this a ``what`` at all, and of a version this studio reads?"""
    if not isinstance(d, dict) or d.get("format") != fmt:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise error(f'{where}: not a {what} (expected "format": "{fmt}", got {_short(got)})')
    if d.get("version") not in versions:
        raise error(
            f"{where}: {what} version {_short(d.get('version'))} is not supported "
            f"(this studio reads version {', '.join(map(str, versions))})"
        )


def _criterion_name(v: str) -> str:
    from studio.core import criteria

    if v not in criteria.ALL:
        raise ValueError(f"unknown criterion (choose from {', '.join(criteria.ALL)})")
    return v


CriterionName = Annotated[str, AfterValidator(_criterion_name)]

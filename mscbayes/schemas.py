"""pydantic for the toolkit's TOML files (analysis and design files): a strict base model and one translation of
pydantic's errors into the toolkit's messages — file, place, what was expected, and a "did you mean" for an
unknown key."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Strict", "problems_of", "read_toml"]


def read_toml(path: str | os.PathLike[str], *, expected: str, error: type[Exception]) -> dict:
    """The parsed TOML file at `path`; a missing file, a directory, a binary file or invalid TOML raise `error`
    with one line naming the file and what was `expected` (e.g. "a design TOML file")."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found (expected {expected})") from None
    except IsADirectoryError:
        raise error(f"{path} is a directory, not {expected}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (expected {expected})") from None
    except tomllib.TOMLDecodeError as err:
        raise error(f"{path}: not valid TOML: {err}") from None


class Strict(BaseModel):
    """A table of a TOML file: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The table model inside a field's type (`_Table`, `_Table | None`, `list[_Table]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the table at `loc` (inside `model`) accepts."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        nested = _nested_model(field.annotation) if field is not None else None
        if nested is None:
            break
        model = nested
    return list(model.model_fields)


def problems_of(err: ValidationError, model: type[BaseModel], where: Callable[[tuple], str],
                messages: Mapping[str, str] | None = None) -> list[str]:
    """One line per pydantic error: '<where>: unknown key 'sed' (did you mean 'seed'?)', '<where> is missing',
    '<where>: <what was expected>, got <value>'. `where(loc)` names the place of an error location; `messages`
    gives the expectation for a field (by name) in the toolkit's words ('must be an integer >= 0')."""
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        names = [str(p) for p in loc if not isinstance(p, int)]
        field = str(loc[-1]) if loc else ""
        named = names[-1] if names else ""
        if e["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            hint = difflib.get_close_matches(field, known, n=1)
            out.append(f"{where(loc[:-1])}: unknown key {field!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                       + f"; known: {', '.join(known)}")
        elif e["type"] == "missing":
            out.append(f"{where(loc)} is missing")
        elif messages and named in messages:
            out.append(f"{where(loc)} {messages[named]}, got {e.get('input')!r}")
        else:
            out.append(f"{where(loc)}: {e['msg']}, got {e.get('input')!r}")
    return out


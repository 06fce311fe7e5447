"""Provenance helpers: package versions, stable hashing, exact table storage, atomic writes.

Nothing here knows about models or samplers; `inference.Fit.save` / `Fit.load` use these
pieces to make a single self-describing ``.nc`` file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import platform
import re
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "VERSIONED_PACKAGES",
    "package_versions",
    "canonical_json",
    "sha256_text",
    "frame_to_csv",
    "frame_dtypes",
    "frame_from_csv",
    "stored_table_sha256",
    "atomic_write",
    "ensure_writable",
    "remove_stale_temporaries",
    "ResultFileError",
]


class ResultFileError(ValueError):
    """A file given as a result of mscbayes (fit, comparison, run manifest) is not one: another format,
    truncated, or missing what mscbayes writes into it. The message names the file."""

#: Distributions whose versions are recorded with every fit (plus ``python``).
VERSIONED_PACKAGES: tuple[str, ...] = (
    "mscbayes",
    "pymc",
    "pytensor",
    "arviz",
    "nutpie",
    "numba",
    "numpy",
    "pandas",
    "xarray",
)


def package_versions() -> dict[str, str]:
    """Versions of the numerical stack, as strings ("not installed" when absent)."""
    out: dict[str, str] = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "mscbayes":  # running from a source tree that is not installed
                from mscbayes import __version__

                out[name] = __version__
            else:
                out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


# --------------------------------------------------------------------------- JSON and hashing


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"cannot store a value of type {type(obj).__name__} as JSON: {obj!r}")


def _finite(obj: Any) -> Any:
    """Replace NaN/inf floats by None so the JSON stays standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, numpy scalars as Python numbers.

    Non-finite floats become ``null`` so the output is strict JSON.
    """
    # first pass converts numpy types; second pass is strict JSON
    plain = json.loads(json.dumps(obj, default=_json_default, allow_nan=True))
    return json.dumps(_finite(plain), sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a UTF-8 string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- exact table storage


NA_TOKEN = "\\N"  # how a missing value is written in stored tables (as PostgreSQL's COPY does)


def frame_to_csv(frame: pd.DataFrame) -> str:
    """The canonical CSV text of a table: no index, ``\\n`` line ends, floats in round-trip repr.

    This text is what is stored in a fit file and what :func:`stored_table_sha256` hashes.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if not frame.columns.is_unique:
        raise ValueError(f"table has duplicate column names: {list(frame.columns)}")
    # missing values get their own token so that an empty string stays an empty string
    return frame.to_csv(index=False, lineterminator="\n", na_rep=NA_TOKEN)


def stored_table_sha256(frame: pd.DataFrame) -> str:
    """Hash of the exact CSV text a fit file stores (an integrity check of the file; the *data* hash of a
    validated table, which ignores layout, is `mscbayes.data.frame_sha256`)."""
    return sha256_text(frame_to_csv(frame))


def frame_dtypes(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """JSON-able description of each column's dtype, enough for :func:`frame_from_csv`."""
    out: dict[str, dict[str, Any]] = {}
    for col, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            out[str(col)] = {
                "dtype": "category",
                "categories": dtype.categories.tolist(),
                "categories_dtype": str(dtype.categories.dtype),
                "ordered": bool(dtype.ordered),
            }
        elif isinstance(dtype, pd.DatetimeTZDtype) or (
            isinstance(dtype, np.dtype) and dtype.kind == "M"
        ):
            out[str(col)] = {"dtype": "datetime", "exact": str(dtype)}
        else:
            out[str(col)] = {"dtype": str(dtype)}
    return out


def frame_from_csv(text: str, dtypes: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Inverse of :func:`frame_to_csv` given the column dtypes from :func:`frame_dtypes`."""
    read_dtypes: dict[str, Any] = {}
    for col, spec in dtypes.items():
        kind = spec["dtype"]
        if kind == "category":
            read_dtypes[col] = spec.get("categories_dtype", "object")
        elif kind == "datetime":
            read_dtypes[col] = "str"
        else:
            read_dtypes[col] = kind
    frame = pd.read_csv(
        io.StringIO(text),
        dtype=read_dtypes,
        keep_default_na=False,
        na_values=[NA_TOKEN],
    )
    for col, spec in dtypes.items():
        if spec["dtype"] == "category":
            categories = pd.Index(spec["categories"], dtype=spec.get("categories_dtype"))
            frame[col] = frame[col].astype(
                pd.CategoricalDtype(categories, ordered=spec["ordered"])
            )
        elif spec["dtype"] == "datetime":
            frame[col] = pd.to_datetime(frame[col]).astype(spec["exact"])
    return frame


# --------------------------------------------------------------------------- atomic writes


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    force: bool = False,
    what: str = "file",
) -> Path:
    """Write a file all-or-nothing.

    ``write(tmp_path)`` fills a temporary file created in the destination directory; only when
    it returns is the temporary file moved over ``path`` (``os.replace``, atomic on POSIX and
    Windows). An existing ``path`` is kept unless ``force=True``: a :class:`FileExistsError`
    names it and mentions ``--force``. On any failure the previous file is untouched and the
    temporary file is removed; one left by a killed writer (``kill -9``, power loss) is removed by the
    next write of the same target (`remove_stale_temporaries`).
    """
    target = ensure_writable(path, force=force, what=what)
    directory = target.parent
    remove_stale_temporaries(target)

    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target) + f"{_HOST}.{os.getpid()}.", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:  # make the bytes durable before the rename
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_file_mode())  # mkstemp makes 0600; give the usual permissions
        if force:
            os.replace(tmp, target)
        else:
            # no-clobber even if someone created the file meanwhile: link fails on an existing name
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise _exists_error(target, what) from None
            except OSError:  # file system without hard links
                if target.exists():
                    raise _exists_error(target, what) from None
                os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


#: This machine's name, in temporary file names: a writer's process id means something only on its own host.
_HOST = socket.gethostname().replace("/", "_") or "localhost"
#: Age (seconds) after which a temporary file without a host and process id (written by mscbayes <= 0.1.0,
#: whose temporary names were ``.NAME.tmpXXXXXXXX``) is taken to be left over.
LEGACY_TEMP_MAX_AGE_S: float = 24 * 3600.0


def _temp_prefix(target: Path) -> str:
    """Start of the name of `target`'s temporary files: ``.NAME.tmp.`` then host, process id and a random
    part (``.fit.nc.tmp.myhost.4242.k3j_x9``), so a later writer can tell whose they are."""
    return f".{target.name}.tmp."


def _pid_alive(pid: int) -> bool:
    """True when a process `pid` exists on this machine (or may exist: no permission to ask)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of `path` that no running writer owns: written on this host by a process
    that no longer exists (killed during `atomic_write`), or in the old unlabelled form and older than
    `LEGACY_TEMP_MAX_AGE_S`. Temporaries of live processes and of other hosts are kept. Returns the removed
    paths."""
    target = Path(path)
    prefix, legacy = _temp_prefix(target), f".{target.name}.tmp"
    removed: list[Path] = []
    try:
        candidates = [p for p in target.parent.iterdir() if p.name.startswith(legacy)]
    except OSError:
        return removed
    for p in candidates:
        if p.name.startswith(prefix):
            host, _, rest = p.name[len(prefix):].rpartition(".")[0].rpartition(".")
            stale = host == _HOST and rest.isdigit() and not _pid_alive(int(rest))
        elif re.fullmatch(r"[a-z0-9_]{8}", p.name[len(legacy):]):  # tempfile.mkstemp's random part
            try:
                stale = time.time() - p.stat().st_mtime > LEGACY_TEMP_MAX_AGE_S
            except OSError:
                stale = False
        else:
            stale = False
        if stale and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def _default_file_mode() -> int:
    """0o666 minus the process umask (what a plain ``open(path, "w")`` would create)."""
    if os.name != "posix":
        return 0o666
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def ensure_writable(path: str | os.PathLike[str], *, force: bool = False, what: str = "file") -> Path:
    """Raise now what `atomic_write` would refuse: a missing directory, a directory as the target (even with
    ``force``), or an existing file without ``force``. Returns the path."""
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {target}: directory {target.parent} does not exist")
    if target.is_dir():  # --force cannot help: refuse before any work (a fit would be sampled, then lost)
        raise IsADirectoryError(f"cannot write the {what} {target}: it is a directory; give a file name")
    if target.exists() and not force:
        raise _exists_error(target, what)
    return target


def _exists_error(target: Path, what: str) -> FileExistsError:
    return FileExistsError(
        f"{what} {str(target)!r} already exists; refusing to overwrite it. "
        "Pass force=True (or --force on the command line) to replace it."
    )

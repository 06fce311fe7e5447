"""Which kind of table a file or DataFrame is, told from its columns (the one detector the CLI and
`mscbayes.analysis` use), and the reader of each data-table kind."""

from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd

from .validation import Table, _header_key, frame_sha256, read_csv_header

__all__ = ["TABLE_KINDS", "TableKindError", "detect_table_kind", "data_readers"]

#: Every table kind, with what it holds.
TABLE_KINDS = {
    "fate": "in vivo fate measurements (docs/data_schema.md §1)",
    "invivo": "fate rows with outcome (and NK) rows: the combined in vivo table",
    "coculture": "in vitro Treg co-culture wells (docs/data_schema.md §2)",
    "nk": "in vitro NK cytotoxicity against MSC (docs/data_schema.md §3)",
    "derived": "a bundled dataset's derived quantities (datasets/README.md)",
    "evidence": "published summaries mapped onto model quantities (the evidence model's table)",
}


class TableKindError(ValueError):
    """The columns do not say which kind of table this is."""


def _columns(source) -> set[str]:
    if isinstance(source, pd.DataFrame):
        return {_header_key(c) for c in source.columns}
    if hasattr(source, "frame"):
        return _columns(source.frame)
    return {_header_key(c) for c in read_csv_header(source)}


def detect_table_kind(source) -> str:
    """The kind of table (`TABLE_KINDS`) at a path, or of a DataFrame, from its columns."""
    cols = _columns(source)
    if {"row_id", "kind", "quantity"} <= cols:
        return "evidence"
    if "quantity" in cols:
        return "derived"
    if {"treatment", "readout"} <= cols or ("organ" in cols and "effector_target_ratio" in cols):
        return "invivo"
    if "organ" in cols or {"assay", "measure"} <= cols:
        return "fate"
    if {"msc_ratio", "donor"} <= cols or "readout" in cols:
        return "coculture"
    if "effector_target_ratio" in cols:
        return "nk"
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the table"
    raise TableKindError(f"{name}: cannot tell the table kind from its columns; expected the columns of one of: "
                         + "; ".join(f"{k} ({v})" for k, v in TABLE_KINDS.items()))


def _read_derived(source) -> Table:
    from .registry import read_derived_table

    frame = read_derived_table(source)
    return Table(kind="derived", frame=frame, source=str(source), sha256=frame_sha256(frame))


def data_readers() -> dict[str, Callable[[object], Table]]:
    """{table kind: reader} for the data tables (the evidence table is read by its model family)."""
    from .coculture import read_coculture_table
    from .nk import read_nk_table
    from .outcomes import read_invivo_table

    return {"fate": read_invivo_table, "invivo": read_invivo_table, "coculture": read_coculture_table,
            "nk": read_nk_table, "derived": _read_derived}

"""Tidy data tables and their validation: the in vivo fate table, the Treg co-culture table, the NK table.

Every reader returns a `Table` (frame, source, sha256) or raises one `DataValidationError` listing every
`Problem` in the file. Column-by-column descriptions: docs/data_schema.md.
"""

from .coculture import (
    BLOCKERS,
    CONTACTS,
    MONOCYTES,
    MSC_FORMS,
    READOUTS,
    RESPONDERS,
    CocultureTable,
    read_coculture_table,
    validate_coculture_frame,
)
from .coculture import COLUMNS as COCULTURE_COLUMNS
from .fate import (
    ASSAYS,
    CENSORING,
    DESTRUCTIVE_ASSAYS,
    MEASURE_UNITS,
    MEASURES,
    ORGANS,
    ROUTE_ORGANS,
    ROUTES,
    ROW_KINDS,
    SPECIES,
    SPREAD_TYPES,
    SUMMARY_ROW_KINDS,
    UNITS,
    FateTable,
    read_fate_table,
    validate_fate_frame,
)
from .fate import COLUMNS as FATE_COLUMNS
from .kinds import TABLE_KINDS, TableKindError, data_readers, detect_table_kind
from .nk import NK_STATES, NKTable, read_nk_table, validate_nk_frame
from .nk import COLUMNS as NK_COLUMNS
from .registry import (
    DERIVED_COLUMNS,
    DERIVED_QUANTITIES,
    DatasetsNotFoundError,
    UnknownDatasetError,
    dataset_info,
    dataset_names,
    dataset_path,
    datasets_root,
    format_dataset_list,
    list_datasets,
    load_dataset,
    read_derived_table,
    show_dataset,
)
from .validation import (
    ColumnSpec,
    DataValidationError,
    Problem,
    Table,
    TableSpec,
    Vocabulary,
    frame_sha256,
    read_csv_text,
)

__all__ = [
    # shared machinery
    "Problem",
    "DataValidationError",
    "Table",
    "read_csv_text",
    "frame_sha256",
    "ColumnSpec",
    "TableSpec",
    "Vocabulary",
    # table kinds
    "TABLE_KINDS",
    "TableKindError",
    "detect_table_kind",
    "data_readers",
    # fate
    "FateTable",
    "read_fate_table",
    "validate_fate_frame",
    "FATE_COLUMNS",
    "SPECIES",
    "ROUTES",
    "ROUTE_ORGANS",
    "ORGANS",
    "ASSAYS",
    "DESTRUCTIVE_ASSAYS",
    "MEASURES",
    "UNITS",
    "MEASURE_UNITS",
    "ROW_KINDS",
    "SUMMARY_ROW_KINDS",
    "SPREAD_TYPES",
    "CENSORING",
    # co-culture
    "CocultureTable",
    "read_coculture_table",
    "validate_coculture_frame",
    "COCULTURE_COLUMNS",
    "RESPONDERS",
    "MSC_FORMS",
    "CONTACTS",
    "MONOCYTES",
    "BLOCKERS",
    "READOUTS",
    # NK
    "NKTable",
    "read_nk_table",
    "validate_nk_frame",
    "NK_COLUMNS",
    "NK_STATES",
    # bundled published-evidence datasets
    "list_datasets",
    "format_dataset_list",
    "dataset_names",
    "dataset_info",
    "dataset_path",
    "datasets_root",
    "load_dataset",
    "show_dataset",
    "read_derived_table",
    "DERIVED_COLUMNS",
    "DERIVED_QUANTITIES",
    "DatasetsNotFoundError",
    "UnknownDatasetError",
]

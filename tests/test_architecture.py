"""The one-way import order ARCHITECTURE.md states, checked on the source (every import, also those inside
functions): a module imports only modules of its own layer or of layers below it; only `inference` calls a
sampler; model families do not import each other; nothing outside the family folders dispatches on a model's
name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mscbayes"

#: Bottom to top (ARCHITECTURE.md, "Layers"). The package root (`mscbayes/__init__.py`: the version and the lazy
#: public API) is outside the order.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("constants", "provenance", "formatting"),
    ("priors", "plots", "schemas", "sweep"),
    ("mechanisms",),
    ("data",),
    ("families",),
    ("diagnostics", "inference", "predictive"),
    ("comparison",),
    ("calibration", "recovery", "design_rank"),
    ("reporting",),
    ("analysis",),
    ("api",),
    ("cli",),
)
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, parts


def _imports(path: Path, parts: list[str]) -> list[tuple[int, list[str]]]:
    """(line, imported module as parts) for every import of a module, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = parts if path.name == "__init__.py" else parts[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = node.module.split(".")
            if mod == ["mscbayes"] or (node.level and not node.module):
                out += [(node.lineno, mod + [a.name]) for a in node.names]
            else:
                out.append((node.lineno, mod))
    return [(line, m) for line, m in out if m and m[0] == "mscbayes"]


MODULES = list(_modules())


def test_every_module_has_a_layer():
    missing = {parts[1] for _, parts in MODULES if len(parts) > 1 and parts[1] not in LAYER}
    assert not missing, f"modules outside ARCHITECTURE.md's layers: {sorted(missing)}"


@pytest.mark.parametrize("path, parts", MODULES, ids=[".".join(p) for _, p in MODULES])
def test_imports_run_one_way(path, parts):
    if len(parts) == 1:  # the package root: version and lazy public API
        return
    own = LAYER[parts[1]]
    bad = []
    for line, mod in _imports(path, parts):
        if len(mod) < 2 or mod[1] == "__version__":
            continue
        target = mod[1]
        if LAYER.get(target, -1) > own:
            bad.append(f"line {line}: {'.'.join(mod)} (layer {LAYER[target]} > {own})")
        if parts[1] == "families" and len(parts) > 3 and len(mod) > 2 and mod[1] == "families" \
                and mod[2] not in ("contract", parts[2]):
            bad.append(f"line {line}: the {parts[2]} family imports another family ({'.'.join(mod)})")
    assert not bad, f"{'.'.join(parts)} imports upwards:\n" + "\n".join(bad)


def test_only_inference_calls_a_sampler():
    calls = re.compile(r"\b(pm\.sample|pymc\.sample|nutpie\.sample|pm\.sample_smc)\(")
    offenders = [".".join(parts) for path, parts in MODULES
                 if calls.search(path.read_text(encoding="utf-8")) and parts[-1] != "inference"]
    assert not offenders, offenders


def test_no_dispatch_on_model_names_outside_the_families():
    """cli, analysis, comparison, inference, reporting and recovery know a model only through its family
    contract."""
    names = ("fate", "mechanisms", "evidence", "treg", "invivo", "coculture")
    pattern = re.compile(r"""(kind|model|name|family)\s*(==|!=|in)\s*\(?\s*["'](%s)["']""" % "|".join(names))
    offenders = []
    for path, parts in MODULES:
        if len(parts) > 1 and parts[1] in ("cli", "analysis", "comparison", "inference", "reporting", "recovery", "api"):
            for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if pattern.search(text):
                    offenders.append(f"{'.'.join(parts)}:{i}: {text.strip()}")
    assert not offenders, "\n".join(offenders)


def test_nothing_imports_the_cli():
    offenders = [".".join(parts) for path, parts in MODULES if parts[-1] != "cli"
                 for _, mod in _imports(path, parts) if mod[1:2] == ["cli"]]
    assert not offenders, offenders

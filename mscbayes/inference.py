"""The one sampling entry point, the fallback ladder, and `Fit` save/load with provenance.

* `sample(model, settings=..., seed=...)` is the only function in mscbayes that calls a sampler
  (nutpie with the numba backend by default, compiled once per model and reused with swapped
  data; ``pm.sample`` for PyMC's NUTS and numpyro).
* `fit_model(model, table, ...)` builds a model family's model (`mscbayes.families`), samples, diagnoses
  and, if the diagnostics fail, retries along a short ladder of safer settings.
* `Fit` is InferenceData plus everything needed to trust, reproduce and rebuild it; it is saved
  as one NetCDF file (atomically) and `Fit.load` refuses a file whose data or model no longer
  match.

A saved fit names its model family (``kind``); the family's contract rebuilds it. This module holds no
model-specific code.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr

from mscbayes import families
from mscbayes.constants import INTERVAL_PROB
from mscbayes.diagnostics import Diagnostics, diagnose
from mscbayes.priors import priors_to_dict
from mscbayes.provenance import (
    ResultFileError,
    atomic_write,
    canonical_json,
    ensure_writable,
    frame_dtypes,
    frame_from_csv,
    frame_to_csv,
    package_versions,
    sha256_text,
    stored_table_sha256,
)

__all__ = [
    "FORMAT_VERSION",
    "SamplerSettings",
    "sample",
    "Fit",
    "FitMismatchError",
    "fit_model",
    "fallback_ladder",
    "model_signature",
    "model_fingerprint",
]

log = logging.getLogger(__name__)

#: Version of the fit-file layout written by `Fit.save`.
FORMAT_VERSION: str = "1"
#: Name of the NetCDF group that holds the exact data table.
DATA_GROUP: str = "fit_data"

SamplerName = Literal["nutpie", "pymc", "numpyro"]
_SAMPLERS: tuple[str, ...] = ("nutpie", "pymc", "numpyro")
MASS_MATRICES: tuple[str, ...] = ("diag", "diag_draws", "low_rank")


#: target_accept and mass_matrix when neither the settings nor the model (`SamplerSettings.for_model`) say.
GENERIC_DEFAULTS: dict[str, Any] = {"target_accept": 0.9, "mass_matrix": "diag"}


class FitMismatchError(ValueError):
    """A saved fit no longer matches its data or the model its kind builds today."""


# =========================================================================== settings


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """Each value rounded to `digits` significant figures (0, NaN and inf unchanged)."""
    out = np.array(values, dtype=float)
    ok = np.isfinite(out) & (out != 0)
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(out[ok]))))
    out[ok] = np.round(out[ok] * scale) / scale
    return out


@dataclass(frozen=True)
class SamplerSettings:
    """How to run NUTS. Plain values only, so it round-trips through JSON.

    ``cores=None`` means ``min(chains, os.cpu_count())`` at run time (the value actually used
    is recorded in `Fit.attempts`). ``target_accept=None`` and ``mass_matrix=None`` mean "the model's own
    default" (`for_model`: a model may carry ``mscbayes_sampler_defaults``, else 0.9 and "diag"); `sample`
    and `fit_model` resolve them before sampling, so a saved fit records the values used.
    """

    sampler: SamplerName = "nutpie"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float | None = None
    max_treedepth: int = 10
    cores: int | None = None
    #: nutpie only: "diag" (diagonal mass matrix estimated from draw and gradient variances, nutpie's default),
    #: "diag_draws" (diagonal from draw variances only, as PyMC and Stan adapt; nutpie's
    #: use_grad_based_mass_matrix=False) or "low_rank" (diagonal plus a low-rank correction learnt from draws
    #: and gradients, for correlated posteriors; nutpie's low_rank_modified_mass_matrix)
    mass_matrix: str | None = None

    def __post_init__(self) -> None:
        if self.sampler not in _SAMPLERS:
            raise ValueError(f"sampler must be one of {_SAMPLERS}, got {self.sampler!r}")
        if self.mass_matrix is not None and self.mass_matrix not in MASS_MATRICES:
            raise ValueError(f"mass_matrix must be one of {MASS_MATRICES}, got {self.mass_matrix!r}")
        if self.mass_matrix not in (None, "diag") and self.sampler != "nutpie":
            raise ValueError(f"mass_matrix {self.mass_matrix!r} needs the nutpie sampler, not {self.sampler!r}")
        for name, low in (("draws", 1), ("tune", 0), ("chains", 1), ("max_treedepth", 1)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ValueError(f"SamplerSettings.{name} must be an int >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.cores is not None:
            if not _is_int(self.cores) or self.cores < 1:
                raise ValueError(f"SamplerSettings.cores must be None or an int >= 1, got {self.cores!r}")
            object.__setattr__(self, "cores", int(self.cores))
        ta = self.target_accept
        if ta is not None:
            if isinstance(ta, bool) or not isinstance(ta, (int, float, np.floating)) or not 0 < ta < 1:
                raise ValueError(f"SamplerSettings.target_accept must be in (0, 1), got {ta!r}")
            object.__setattr__(self, "target_accept", float(ta))

    def for_model(self, model: Any = None) -> SamplerSettings:
        """These settings with target_accept and mass_matrix filled in where they are None: from
        ``model.mscbayes_sampler_defaults`` (a builder's choice for its posterior geometry; the mass matrix
        only for nutpie), else the generic defaults 0.9 and "diag"."""
        own = dict(getattr(model, "mscbayes_sampler_defaults", None) or {})
        if self.sampler != "nutpie":
            own.pop("mass_matrix", None)
        filled = {name: own.get(name, GENERIC_DEFAULTS[name]) for name in GENERIC_DEFAULTS
                  if getattr(self, name) is None}
        return replace(self, **filled) if filled else self

    def resolved_cores(self) -> int:
        if self.cores is not None:
            return self.cores
        return max(1, min(self.chains, os.cpu_count() or 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SamplerSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown sampler setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(d))


# =========================================================================== sampling


def _check_seed(seed: Any) -> int:
    if not _is_int(seed):
        raise TypeError(
            f"seed must be a plain int (got {type(seed).__name__}: {seed!r}); "
            "generators, RandomState objects, floats and None are not accepted because only an "
            "int can be stored with the fit and reproduce it"
        )
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return seed


def _require_numpyro() -> None:
    missing = [m for m in ("jax", "numpyro") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"the numpyro sampler needs {' and '.join(missing)}, which is not installed; "
            'install the optional extra with: pip install "mscbayes[jax]"'
        )


def sample(
    model: pm.Model,
    *,
    settings: SamplerSettings | None = None,
    seed: int,
    progress: bool = True,
    store_divergences: bool = False,
    log_likelihood: bool = True,
) -> az.InferenceData:
    """Draw posterior samples from `model` with NUTS. The only place mscbayes calls a sampler.

    Returns InferenceData with ``posterior``, ``sample_stats``, ``log_likelihood`` (always
    computed afterwards, for every sampler), ``observed_data`` and ``constant_data``; warmup
    groups are dropped. ``sample_stats.attrs`` records the sampler and ``max_treedepth``.
    The same int `seed` on the same model and settings gives identical draws — with nutpie, once pytensor's numba
    cache holds the compiled model: a model's first compile on a machine differs in the last bits, and so do its
    draws (benchmarks/README.md, "Reproducibility").
    ``store_divergences`` (nutpie only, for locating divergences; draws unchanged): ``sample_stats`` also holds the
    start and end points of every divergent trajectory and every draw's unconstrained coordinates (nutpie's
    ``divergence_start``, ``divergence_end``, ``unconstrained_draw``), in `model.value_vars` order.
    ``log_likelihood=False`` leaves the log-likelihood out (simulation-based calibration needs none, and computing
    it compiles a function for every new model).
    """
    seed = _check_seed(seed)
    settings = SamplerSettings() if settings is None else settings
    if not isinstance(settings, SamplerSettings):
        raise TypeError(f"settings must be a SamplerSettings, got {type(settings).__name__}")
    if store_divergences and settings.sampler != "nutpie":
        raise ValueError(f"store_divergences needs the nutpie sampler, not {settings.sampler!r}")
    if not isinstance(model, pm.Model):
        raise TypeError(f"model must be a pymc.Model, got {type(model).__name__}")
    settings = settings.for_model(model)

    cores = settings.resolved_cores()
    common: dict[str, Any] = dict(
        model=model,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=cores,
        target_accept=settings.target_accept,
        random_seed=seed,
        progressbar=progress,
        compute_convergence_checks=False,  # mscbayes.diagnostics does this, for every sampler
        return_inferencedata=True,
    )
    if settings.sampler == "nutpie":
        idata = _sample_nutpie(model, settings, seed=seed, cores=cores, progress=progress,
                               store_divergences=store_divergences)
    elif settings.sampler == "pymc":
        idata = pm.sample(nuts_sampler="pymc", max_treedepth=settings.max_treedepth, **common)
    else:  # numpyro
        _require_numpyro()
        if "jax" not in sys.modules and cores > 1:
            # parallel chains on CPU need host devices, and only before jax is imported
            flags = os.environ.get("XLA_FLAGS", "")
            if "xla_force_host_platform_device_count" not in flags:
                os.environ["XLA_FLAGS"] = (
                    f"{flags} --xla_force_host_platform_device_count={cores}".strip()
                )
        idata = pm.sample(
            nuts_sampler="numpyro",
            nuts_sampler_kwargs={
                "chain_method": "parallel",
                "nuts_kwargs": {"max_tree_depth": settings.max_treedepth},
            },
            idata_kwargs={"log_likelihood": False},
            **common,
        )

    for group in [g for g in idata.groups() if g.startswith("warmup_")]:
        delattr(idata, group)
    # nutpie also returns the unconstrained values (e.g. sigma_log__); keep what pymc keeps
    value_names = {
        model.rvs_to_values[rv].name
        for rv in model.free_RVs
        if model.rvs_to_transforms.get(rv) is not None
    } - {rv.name for rv in model.free_RVs}
    extra = [v for v in idata.posterior.data_vars if v in value_names]
    if extra:
        idata.posterior = idata.posterior.drop_vars(extra)
    if model.observed_RVs and log_likelihood:
        pm.compute_log_likelihood(idata, model=model, extend_inferencedata=True, progressbar=False)
    if "sample_stats" in idata.groups():
        idata.sample_stats.attrs["sampler"] = settings.sampler
        idata.sample_stats.attrs["max_treedepth"] = settings.max_treedepth
    return idata


# =========================================================================== nutpie, compiled once

#: Compiled nutpie models. Compilation (numba) takes 10-200 s, far more than sampling small designs, so a
#: model is compiled once and reused: by the same `pm.Model` (fallback attempts, K-fold folds, replicate
#: data sets swapped in with ``pm.set_data``) and by any later model whose log-density and deterministic
#: graphs are identical up to its data (`pytensor.graph.basic.equal_computations`: same operations, same
#: constants; shared data paired by name), e.g. the same table rebuilt. The most recent few are kept.
_NUTPIE_BY_MODEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NUTPIE_RECENT: list = []
NUTPIE_CACHE_SIZE: int = 6


def _shared_variables(model: pm.Model) -> dict[str, Any]:
    """The model's shared variables by name (pm.Data and mutable dimension lengths)."""
    shared = {v.name: v for v in model.data_vars}
    shared.update({v.name: v for v in model.dim_lengths.values() if hasattr(v, "get_value")})
    return {k: v for k, v in shared.items() if k}


def _structure_key(model: pm.Model) -> tuple:
    """A cheap necessary condition for reuse: variable names and data shapes."""
    return (
        tuple(v.name for v in model.free_RVs),
        tuple(v.name for v in model.observed_RVs),
        tuple(v.name for v in model.deterministics),
        tuple((k, np.shape(v.get_value())) for k, v in sorted(_shared_variables(model).items())),
    )


@dataclass
class _CacheEntry:
    key: tuple
    compiled: Any
    model: pm.Model
    _graphs: tuple | None = None

    def graphs(self) -> tuple[list, list]:
        if self._graphs is None:
            self._graphs = _graphs_of(self.model)
        return self._graphs


def _graphs_of(model: pm.Model) -> tuple[list, list]:
    outs = [model.logp(), *model.replace_rvs_by_values(model.deterministics)]
    shared = _shared_variables(model)
    ins = [model.rvs_to_values[v] for v in model.free_RVs] + [shared[k] for k in sorted(shared)]
    return outs, ins


def _same_computation(entry: _CacheEntry, model: pm.Model) -> bool:
    from pytensor.graph.basic import equal_computations

    outs_a, ins_a = entry.graphs()
    outs_b, ins_b = _graphs_of(model)
    try:
        return bool(equal_computations(outs_a, outs_b, in_xs=ins_a, in_ys=ins_b))
    except RecursionError:
        return False


def compiled_nutpie_model(model: pm.Model) -> Any:
    """The nutpie-compiled (numba) `model` with the model's current data swapped in: from the cache when
    the same or an identical computation was compiled before, else compiled now. A nutpie CompiledModel."""
    import nutpie

    key = _structure_key(model)
    entry = _NUTPIE_BY_MODEL.get(model)
    if entry is None or entry.key != key:
        entry = next((e for e in reversed(_NUTPIE_RECENT) if e.key == key and _same_computation(e, model)), None)
        if entry is None:
            log.info("compiling the model with numba (seconds when this machine's cache holds it; the first compile "
                     "of a model on a machine takes minutes)")
            t0 = time.time()
            compiled = nutpie.compile_pymc_model(model, backend="numba", gradient_backend="pytensor")
            log.info("compiled in %.0f s", time.time() - t0)
            entry = _CacheEntry(key=key, compiled=compiled, model=model)
            _NUTPIE_RECENT.append(entry)
            for old in _NUTPIE_RECENT[:-NUTPIE_CACHE_SIZE]:
                _NUTPIE_BY_MODEL.pop(old.model, None)   # the entry holds its model: let both go
            del _NUTPIE_RECENT[:-NUTPIE_CACHE_SIZE]
            _NUTPIE_BY_MODEL[model] = entry
            return compiled
        _NUTPIE_BY_MODEL[model] = entry
    compiled = entry.compiled
    current = {k: np.asarray(v.get_value()) for k, v in _shared_variables(model).items()}
    updates = {k: v for k, v in current.items() if k in compiled.shared_data}
    return compiled.with_data(**updates) if updates else compiled


def _sample_nutpie(model: pm.Model, settings: SamplerSettings, *, seed: int, cores: int,
                   progress: bool, store_divergences: bool = False) -> az.InferenceData:
    """nutpie's NUTS on the cached compiled model, returned with the groups ``pm.sample`` adds."""
    import nutpie
    from arviz.data.base import dict_to_dataset
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        find_constants,
        find_observations,
    )

    compiled = compiled_nutpie_model(model)
    log.info("sampling %d chains × %d draws (tune %d) with nutpie%s", settings.chains, settings.draws, settings.tune,
             "" if progress else "; no progress bar off a terminal")
    t0 = time.time()
    idata = nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=cores,
        seed=seed,
        save_warmup=False,
        progress_bar=progress,
        target_accept=settings.target_accept,
        maxdepth=settings.max_treedepth,
        low_rank_modified_mass_matrix=settings.mass_matrix == "low_rank",
        store_divergences=store_divergences,
        store_unconstrained=store_divergences,
        # nutpie refuses this keyword with low-rank adaptation, so it is passed only when it changes something
        **({"use_grad_based_mass_matrix": False} if settings.mass_matrix == "diag_draws" else {}),
    )
    # labels from this model (a cached compile may carry another model's coordinate values)
    labels = {dim: list(vals) for dim, vals in model.coords.items()
              if dim in idata.posterior.dims and vals is not None and len(vals) == idata.posterior.sizes[dim]}
    idata.posterior = idata.posterior.assign_coords(labels)
    idata.posterior.attrs["sampling_time"] = time.time() - t0
    idata.posterior.attrs["tuning_steps"] = settings.tune
    coords, dims = coords_and_dims_for_inferencedata(model)
    groups = {
        "constant_data": dict_to_dataset(find_constants(model), library=pm, coords=coords, dims=dims,
                                         default_dims=[]),
        "observed_data": dict_to_dataset(find_observations(model), library=pm, coords=coords, dims=dims,
                                         default_dims=[]),
    }
    idata.add_groups(groups, coords=coords, dims=dims)
    return idata


# =========================================================================== model fingerprint


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def model_signature(model: pm.Model, priors: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What makes two builds "the same model": free and observed variables (name, distribution,
    shape, dims), the coordinates and, when given, the prior table the model was built with (stored form,
    `mscbayes.priors.priors_to_dict`: every parameter of every prior). Deterministics are deliberately left
    out, so adding a derived quantity does not invalidate saved fits."""
    free = list(model.free_RVs)
    observed = list(model.observed_RVs)
    outputs = [pt.as_tensor(rv.shape) for rv in free] + [
        pt.as_tensor(model.rvs_to_values[rv].shape) for rv in observed
    ]
    shapes: list[tuple[int, ...]] = []
    if outputs:
        fn = pytensor.function(
            inputs=[],
            outputs=outputs,
            givens=[(rv, model.rvs_to_values[rv]) for rv in observed],
            mode=pytensor.compile.mode.FAST_COMPILE,
            on_unused_input="ignore",
        )
        shapes = [tuple(int(s) for s in shape) for shape in fn()]
    dims = model.named_vars_to_dims

    def describe(rv: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        return {
            "dist": type(rv.owner.op).__name__ if rv.owner is not None else "?",
            "shape": list(shape),
            "dims": [str(d) if d is not None else None for d in dims.get(rv.name, ()) or ()],
        }

    sig_free = {rv.name: describe(rv, shp) for rv, shp in zip(free, shapes[: len(free)])}
    sig_obs = {rv.name: describe(rv, shp) for rv, shp in zip(observed, shapes[len(free):])}
    coords = {
        str(name): (None if values is None else [_plain(v) for v in values])
        for name, values in model.coords.items()
    }
    sig = {"free": sig_free, "observed": sig_obs, "coords": coords}
    if priors is not None:
        sig["priors"] = json.loads(canonical_json(priors))
    return sig


def model_fingerprint(model_or_signature: pm.Model | Mapping[str, Any]) -> str:
    """SHA-256 of `model_signature` (canonical JSON)."""
    sig = (
        model_or_signature
        if isinstance(model_or_signature, Mapping)
        else model_signature(model_or_signature)
    )
    return sha256_text(canonical_json(sig))


def _describe_signature_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    old = json.loads(canonical_json(old))
    new = json.loads(canonical_json(new))
    out: list[str] = []
    for part, label in (("free", "free variable"), ("observed", "observed variable")):
        a, b = old.get(part, {}), new.get(part, {})
        for name in sorted(set(a) - set(b)):
            out.append(f"{label} {name!r} is gone")
        for name in sorted(set(b) - set(a)):
            out.append(f"{label} {name!r} is new")
        for name in sorted(set(a) & set(b)):
            for key in ("dist", "shape", "dims"):
                if a[name].get(key) != b[name].get(key):
                    out.append(
                        f"{label} {name!r}: {key} was {a[name].get(key)} and is now {b[name].get(key)}"
                    )
    pa, pb = old.get("priors", {}), new.get("priors", {})
    for name in sorted(set(pa) | set(pb)):
        if pa.get(name) != pb.get(name):
            out.append(f"prior {name!r} was {_prior_text(pa.get(name))} and is now {_prior_text(pb.get(name))}")
    ca, cb = old.get("coords", {}), new.get("coords", {})
    for name in sorted(set(ca) - set(cb)):
        out.append(f"coord {name!r} is gone")
    for name in sorted(set(cb) - set(ca)):
        out.append(f"coord {name!r} is new")
    for name in sorted(set(ca) & set(cb)):
        if ca[name] != cb[name]:
            la = "?" if ca[name] is None else len(ca[name])
            lb = "?" if cb[name] is None else len(cb[name])
            out.append(f"coord {name!r} values differ ({la} stored vs {lb} rebuilt)")
    return out or ["the model signature differs"]


def _prior_text(stored: Mapping[str, Any] | None) -> str:
    """'lognormal(median=0.07, sigma=0.8)' for a stored prior (`Prior.to_dict`), 'absent' for None."""
    if not stored:
        return "absent"
    params = stored.get("params") or {}
    return f"{stored.get('dist', '?')}(" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + ")"


def _check_recorded_priors(signature: Mapping[str, Any], priors: Mapping[str, Any], path: Path) -> None:
    """The prior table a fit file shows must be the one its model was built with (recorded in the signature
    when it was sampled; files written before priors were recorded there are not checked)."""
    if "priors" not in signature:
        return
    recorded, shown = signature["priors"], json.loads(canonical_json(priors))
    changed = [f"{name!r} ({_prior_text(recorded.get(name))} sampled, {_prior_text(shown.get(name))} recorded)"
               for name in sorted(set(recorded) | set(shown)) if recorded.get(name) != shown.get(name)]
    if changed:
        raise FitMismatchError(
            f"{path}: the recorded priors are not the priors this fit was sampled with: {'; '.join(changed)}; "
            "the file was altered after it was written"
        )


# =========================================================================== Fit


def _json_attr(attrs: Mapping[str, Any], key: str, path: Path) -> Any:
    if key not in attrs:
        raise ResultFileError(f"{path}: fit file lacks the provenance attribute {key!r}")
    try:
        return json.loads(attrs[key])
    except (TypeError, json.JSONDecodeError) as err:
        raise ResultFileError(f"{path}: provenance attribute {key!r} is not valid JSON: {err}") from None


@dataclass(eq=False)
class Fit:
    """A posterior sample plus what is needed to trust, reproduce and rebuild it."""

    idata: az.InferenceData = field(repr=False)
    kind: str
    hypothesis: str | None
    priors: dict = field(repr=False)
    settings: SamplerSettings
    seed: int
    data: pd.DataFrame = field(repr=False)
    data_source: str
    data_sha256: str
    diagnostics: Diagnostics = field(repr=False)
    attempts: list[dict] = field(repr=False)
    versions: dict[str, str] = field(repr=False)
    wall_seconds: float
    _model: pm.Model | None = field(default=None, init=False, repr=False)
    _stored_signature: dict | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------------ views

    @property
    def trustworthy(self) -> bool:
        """True when every error-level diagnostic passed."""
        return bool(self.diagnostics.passed)

    def __repr__(self) -> str:
        verdict = "trustworthy" if self.trustworthy else "UNTRUSTWORTHY"
        return (
            f"Fit(kind={self.kind!r}, hypothesis={self.hypothesis!r}, "
            f"sampler={self.settings.sampler!r}, seed={self.seed}, "
            f"rows={len(self.data)}, {verdict})"
        )

    @property
    def design_notes(self) -> list[str]:
        """What the table's read-outs cannot tell apart (the family's `design_notes`): a design fact to read
        beside wide or slowly mixing rates."""
        return list(self.family.design_notes(self.data))

    def summary(self, var_names: Sequence[str] | None = None, significant: int = 3) -> pd.DataFrame:
        """`az.summary` with the project's interval (`constants.INTERVAL_PROB`); ``.attrs`` carries the verdict.

        Estimates (mean, sd, HDI, MCSE) keep `significant` significant figures, so a rate of 0.0042 per hour
        is not shown as 0.0 (arviz rounds to 2 decimals); R-hat keeps 3 decimals, as the verdict reads it
        (1.013 fails R-hat <= 1.01, which 2 decimals would show as 1.01); ESS is a whole number."""
        table = az.summary(self.idata, var_names=var_names, hdi_prob=INTERVAL_PROB, round_to="none")
        for column in table.columns:
            if column == "r_hat":
                table[column] = table[column].round(3)
            elif column.startswith("ess_"):
                table[column] = table[column].round(0)
            else:
                table[column] = _round_significant(table[column].to_numpy(dtype=float), significant)
        table.attrs["trustworthy"] = self.trustworthy
        table.attrs["diagnostics"] = self.diagnostics.text()
        return table

    def model(self) -> pm.Model:
        """The model rebuilt from the stored kind, table, priors and hypothesis (cached).

        Raises `FitMismatchError` if it no longer matches the model this fit was sampled from.
        """
        if self._model is None:
            self._rebuild()
        assert self._model is not None
        return self._model

    # ------------------------------------------------------------------ rebuild

    @property
    def family(self) -> families.Family:
        """The model family this fit was made with (`mscbayes.families`)."""
        return families.get(self.kind)

    def _rebuild(self) -> None:
        family = self.family
        table = family.read_table(self.data.copy())
        frame = getattr(table, "frame", None)
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"model {self.kind!r}: read_table returned {type(table).__name__} "
                "without a DataFrame 'frame' attribute"
            )
        new_hash = str(getattr(table, "sha256", ""))
        if new_hash != self.data_sha256:
            raise FitMismatchError(
                f"re-validating the stored {self.kind!r} table with today's rules gives data hash "
                f"{new_hash[:12]}, but the fit was sampled on data hash {self.data_sha256[:12]}; "
                "the fit cannot be rebuilt on the data it was sampled from"
            )
        model = family.build(frame, family.resolve_priors(self.priors), self.hypothesis)
        if self._stored_signature is not None:
            new_sig = model_signature(model, self.priors if "priors" in self._stored_signature else None)
            if model_fingerprint(new_sig) != model_fingerprint(self._stored_signature):
                changes = "; ".join(_describe_signature_change(self._stored_signature, new_sig))
                raise FitMismatchError(
                    f"the {self.kind!r} model built today from the stored priors and hypothesis "
                    f"{self.hypothesis!r} is not the model this fit was sampled from: {changes}"
                )
        self.data = frame
        self._model = model

    # ------------------------------------------------------------------ provenance

    def provenance(self) -> dict[str, str]:
        """The provenance attributes written into the file (every value a JSON string)."""
        if self._stored_signature is None:
            self._stored_signature = model_signature(self.model(), self.priors)
        signature = self._stored_signature
        verdict = self.diagnostics.text()
        prov = {
            "mscbayes_format": FORMAT_VERSION,
            "kind": self.kind,
            "hypothesis": self.hypothesis,
            "priors": self.priors,
            "settings": self.settings.to_dict(),
            "seed": self.seed,
            "data_source": self.data_source,
            "data_sha256": self.data_sha256,
            "table_sha256": stored_table_sha256(self.data),
            "diagnostics": self.diagnostics.to_dict(),
            "trustworthy": self.trustworthy,
            "verdict": verdict,
            "attempts": self.attempts,
            "versions": self.versions,
            "wall_seconds": self.wall_seconds,
            "model_signature": signature,
            "model_fingerprint": model_fingerprint(signature),
        }
        return {key: canonical_json(value) for key, value in prov.items()}

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the fit to one NetCDF file, atomically.

        Groups: the InferenceData groups, plus ``fit_data`` holding the data table as exact CSV
        text. Root attributes: provenance as JSON strings (see `provenance`). An existing file
        is never replaced unless ``force=True``; on failure the old file is untouched and no
        temporary file remains.
        """
        target = Path(path)
        ensure_writable(target, force=force, what="fit file")  # fail fast, before any work
        prov = self.provenance()

        csv = frame_to_csv(self.data)
        dtypes = frame_dtypes(self.data)
        back = frame_from_csv(csv, json.loads(canonical_json(dtypes)))
        try:
            pd.testing.assert_frame_equal(back, self.data.reset_index(drop=True), check_exact=True)
        except AssertionError as err:
            raise ValueError(
                f"the data table of this fit cannot be stored exactly as CSV ({err}); "
                "give its columns plain dtypes (numbers, bool, str, category, datetime)"
            ) from None
        data_group = xr.Dataset(
            {"table_csv": ((), csv)},
            attrs={"dtypes": canonical_json(dtypes), "description": "exact data table (CSV)"},
        )
        groups = {g: getattr(self.idata, g) for g in self.idata.groups() if g != DATA_GROUP}
        out = az.InferenceData(attrs={**dict(self.idata.attrs), **prov}, **groups)

        def write(tmp: Path) -> None:
            out.to_netcdf(str(tmp), engine="h5netcdf")
            data_group.to_netcdf(str(tmp), mode="a", group=DATA_GROUP, engine="h5netcdf")

        written = atomic_write(target, write, force=force, what="fit file")
        self.idata.attrs.update(prov)
        if not self.trustworthy:
            log.warning("saved UNTRUSTWORTHY fit to %s: %s", written, self.diagnostics.text())
        return written

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, rebuild: bool = True) -> Fit:
        """Read a fit written by `save`.

        Checks that the stored table still hashes to what was recorded; with ``rebuild=True``
        (default) it also re-validates the table through its family's ``read_table``,
        rebuilds the model with the stored priors and hypothesis, and compares its fingerprint.
        Any difference raises `FitMismatchError` saying what differs. With ``rebuild=False``
        these checks run on the first call of `Fit.model`.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no fit file at {path}")
        try:
            with az.rc_context({"data.load": "eager"}):
                idata = az.from_netcdf(str(path))
        except (OSError, ValueError, KeyError, TypeError) as err:  # h5py/netCDF: not HDF5, truncated, ...
            raise ResultFileError(f"{path}: not a readable fit file (expected the NetCDF file `mscbayes fit` "
                                  f"writes; reading it gave {type(err).__name__}: {err})") from None
        attrs = dict(idata.attrs)
        if "mscbayes_format" not in attrs:
            raise ResultFileError(f"{path} is not an mscbayes fit file (no 'mscbayes_format' attribute)")
        fmt = _json_attr(attrs, "mscbayes_format", path)
        if str(fmt) != FORMAT_VERSION:
            raise ResultFileError(f"{path}: fit file format {fmt!r} is not supported (expected {FORMAT_VERSION})")
        if DATA_GROUP not in idata.groups():
            raise ResultFileError(f"{path}: fit file has no {DATA_GROUP!r} group with the data table")

        data_group = getattr(idata, DATA_GROUP)
        try:
            csv = str(data_group["table_csv"].values.item())
            dtypes = json.loads(data_group.attrs["dtypes"])
        except (KeyError, ValueError, TypeError) as err:
            raise ResultFileError(f"{path}: the {DATA_GROUP!r} group lacks a readable data table ({err})") from None
        delattr(idata, DATA_GROUP)

        stored_table_hash = _json_attr(attrs, "table_sha256", path)
        actual = sha256_text(csv)
        if actual != stored_table_hash:
            raise FitMismatchError(
                f"{path}: the stored data table does not match its recorded hash "
                f"({stored_table_hash[:12]} recorded, {actual[:12]} found): the file was altered "
                "or corrupted after it was written"
            )
        frame = frame_from_csv(csv, dtypes)

        try:
            settings = SamplerSettings.from_dict(_json_attr(attrs, "settings", path))
            fit = cls(
                idata=idata,
                kind=_json_attr(attrs, "kind", path),
                hypothesis=_json_attr(attrs, "hypothesis", path),
                priors=_json_attr(attrs, "priors", path),
                settings=settings,
                seed=int(_json_attr(attrs, "seed", path)),
                data=frame,
                data_source=_json_attr(attrs, "data_source", path),
                data_sha256=_json_attr(attrs, "data_sha256", path),
                diagnostics=Diagnostics.from_dict(_json_attr(attrs, "diagnostics", path)),
                attempts=list(_json_attr(attrs, "attempts", path)),
                versions=dict(_json_attr(attrs, "versions", path)),
                wall_seconds=float(_json_attr(attrs, "wall_seconds", path)),
            )
        except ResultFileError:
            raise
        except (KeyError, TypeError, ValueError) as err:  # a hand-edited attribute of the right JSON but wrong shape
            raise ResultFileError(f"{path}: malformed provenance attribute ({type(err).__name__}: {err})") from None
        signature = _json_attr(attrs, "model_signature", path)
        if model_fingerprint(signature) != _json_attr(attrs, "model_fingerprint", path):
            raise FitMismatchError(
                f"{path}: the stored model signature does not match its recorded fingerprint "
                "(the file was altered after it was written)"
            )
        _check_recorded_priors(signature, fit.priors, path)
        fit._stored_signature = signature
        if rebuild:
            try:
                fit._rebuild()
            except FitMismatchError as err:
                raise FitMismatchError(f"{path}: {err}") from None
        if not fit.trustworthy:
            log.warning("loaded UNTRUSTWORTHY fit %s: %s", path, fit.diagnostics.text())
        return fit


# =========================================================================== fit_model + ladder


def fallback_ladder(settings: SamplerSettings) -> list[SamplerSettings]:
    """The settings `fit_model` tries, in order, when diagnostics fail.

    1. the given settings;
    2. tune doubled (at least 100) and target_accept raised to 0.95 (0.99 if already >= 0.95); nutpie's
       gradient-based diagonal ("diag") becomes the draw-variance diagonal ("diag_draws"), which mixes better
       along ridges of correlated parameters (the fate model's failures with "diag" on large data were slow
       mixing of the lung trapping curve, benchmarks/README.md);
    3. the same as 2 with a different sampler: PyMC's NUTS (or nutpie if PyMC was already used).
    Settings left to the model (None) are read as the generic defaults; `fit_model` resolves them first.
    """
    settings = settings.for_model(None)
    safer = replace(
        settings,
        tune=max(2 * settings.tune, 100),
        target_accept=0.95 if settings.target_accept < 0.95 else max(0.99, settings.target_accept),
        mass_matrix="diag_draws" if settings.sampler == "nutpie" and settings.mass_matrix == "diag"
        else settings.mass_matrix,
    )
    other = replace(safer, sampler="pymc" if settings.sampler != "pymc" else "nutpie", mass_matrix="diag")
    return [settings, safer, other]


def _badness(diag: Diagnostics) -> tuple[float, ...]:
    """Sort key: smaller is better (passed, then fewer failures, divergences, lower R-hat)."""
    def value(name: str, default: float) -> float:
        try:
            v = diag[name].value
        except KeyError:
            return default
        return default if np.isnan(v) else v

    return (
        0.0 if diag.passed else 1.0,
        float(len(diag.failures)),
        value("divergences", np.inf),
        value("r_hat", np.inf),
    )


def _as_table(family: families.Family, table: Any) -> Any:
    if all(hasattr(table, a) for a in ("kind", "frame", "source", "sha256")) and isinstance(
        table.frame, pd.DataFrame
    ):
        return table
    # a DataFrame or a path: let the family's reader validate it
    validated = family.read_table(table)
    if not isinstance(getattr(validated, "frame", None), pd.DataFrame):
        raise TypeError(f"read_table of model {family.name!r} did not return a Table")
    return validated


def fit_model(
    model: str | families.Family,
    table: Any,
    *,
    priors: Mapping[str, Any] | None = None,
    hypothesis: str | None = None,
    settings: SamplerSettings | None = None,
    seed: int,
    progress: bool = True,
    fallback: bool = True,
    thresholds: Mapping[str, float] | None = None,
) -> Fit:
    """Build the model of family `model` (a name from `mscbayes.families` or a `Family`) on `table`, sample it,
    diagnose it.

    `table` is a validated Table (kind, frame, source, sha256); a DataFrame or path is first
    validated with the family's ``read_table``. `priors`: overrides (``{name: {param: value}}``), a table of
    `Prior` objects or its stored form; the fit records the resolved table. `hypothesis`: one of the family's
    hypotheses (None: its default). `thresholds` are passed to `diagnose` (e.g.
    ``{"ess_bulk_min": 100}`` for small test fits). If the diagnostics fail and
    ``fallback=True``, the settings of `fallback_ladder` are tried in turn until one passes;
    every attempt is recorded in ``Fit.attempts`` and the best one is kept. A fit that still
    fails is returned, marked untrustworthy, and a warning is logged.
    """
    seed = _check_seed(seed)
    settings = SamplerSettings() if settings is None else settings
    family = families.get(model)
    kind = family.name
    hypothesis = family.check_hypothesis(hypothesis)
    table = _as_table(family, table)
    family.check_data(table.frame, hypothesis)
    resolved = family.resolve_priors(priors, source="priors")
    priors = priors_to_dict(resolved)
    canonical_json(priors)  # fail now, not after sampling, if the priors cannot be stored
    thresholds = dict(thresholds or {})
    allowed = set(inspect.signature(diagnose).parameters) - {"idata"}
    if set(thresholds) - allowed:
        raise ValueError(
            f"unknown diagnostic threshold(s) {sorted(set(thresholds) - allowed)}; "
            f"known: {sorted(allowed)}"
        )

    started = time.perf_counter()
    pm_model = family.build(table.frame, resolved, hypothesis)
    settings = settings.for_model(pm_model)
    ladder = fallback_ladder(settings) if fallback else [settings]

    attempts: list[dict[str, Any]] = []
    results: list[tuple[int, az.InferenceData, Diagnostics, SamplerSettings]] = []
    for number, attempt_settings in enumerate(ladder, start=1):
        t0 = time.perf_counter()
        record: dict[str, Any] = {
            "attempt": number,
            "sampler": attempt_settings.sampler,
            "settings": attempt_settings.to_dict(),
            "cores_used": attempt_settings.resolved_cores(),
        }
        try:
            idata = sample(pm_model, settings=attempt_settings, seed=seed, progress=progress)
        except Exception as err:
            if number == 1:
                raise
            record.update(passed=False, verdict=f"ERROR: {type(err).__name__}: {err}", kept=False)
            record["wall_seconds"] = round(time.perf_counter() - t0, 3)
            attempts.append(record)
            log.warning("fallback attempt %d (%s) failed: %s", number, attempt_settings.sampler, err)
            continue
        diag = diagnose(idata, **thresholds)
        record.update(
            passed=diag.passed,
            verdict=diag.text(),
            diagnostics=diag.to_dict(),
            kept=False,
            wall_seconds=round(time.perf_counter() - t0, 3),
        )
        attempts.append(record)
        results.append((len(attempts) - 1, idata, diag, attempt_settings))
        if diag.passed:
            break
        if number < len(ladder):
            log.warning(
                "attempt %d with %s did not converge (%s); retrying with safer settings",
                number, attempt_settings.sampler, diag.text(),
            )

    best_index, idata, diag, used = min(results, key=lambda r: _badness(r[2]))
    attempts[best_index]["kept"] = True

    fit = Fit(
        idata=idata,
        kind=kind,
        hypothesis=hypothesis,
        priors=priors,
        settings=used,
        seed=seed,
        data=table.frame,
        data_source=str(table.source),
        data_sha256=str(table.sha256),
        diagnostics=diag,
        attempts=attempts,
        versions=package_versions(),
        wall_seconds=round(time.perf_counter() - started, 3),
    )
    fit._model = pm_model
    fit._stored_signature = model_signature(pm_model, priors)
    fit.idata.attrs.update(fit.provenance())
    if not fit.trustworthy:
        log.warning(
            "fit of %r (hypothesis %r) is UNTRUSTWORTHY after %d attempt(s): %s",
            kind, hypothesis, len(attempts), diag.text(),
        )
    return fit

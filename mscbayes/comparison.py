"""Model comparison by grouped PSIS-LOO and stacking, with the checks that make it trustworthy.

Generic over model kinds: the in vitro Treg rules (grouped by donor) and the in vivo hypotheses
(grouped by animal or study) use the same function.

    comparison = compare_models({"H1": fit1, "H2": fit2}, group="animal")
    comparison.table        # az.compare (stacking) + BB-pseudo-BMA weights + Pareto-k counts
    comparison.pareto_k     # one row per model × group: k, good_k, ok
    comparison.verdict      # a plain-words paragraph

Grouped LOO ("leave one group out"): the pointwise log-likelihood of every observed variable is summed
over the observations of each group into one joint log-likelihood per group, and PSIS-LOO is run on
those sums (docs/science.md §8; Vehtari, Gelman & Gabry 2017, Stat Comput 27:1413,
doi:10.1007/s11222-016-9696-4). Observations of one donor or animal share its random effects, so leaving
out single points would be over-optimistic about predicting a new donor.

How observations are assigned to groups, for each log-likelihood variable with observation dim ``o``
(first match wins):

1. ``labels={var_name: labels}`` given explicitly (one label per observation);
2. ``group`` is itself a dimension of the variable: each position along it is a group;
3. a coordinate called ``group`` on dim ``o`` (in ``log_likelihood``, ``observed_data`` or
   ``constant_data``);
4. an integer variable ``<group>_index`` (or ``<group>_idx``) on dim ``o`` in ``constant_data``,
   indexing the ``group`` coordinate of the posterior (what ``pm.Data("donor_index", ..., dims="obs")``
   produces with a ``donor`` coordinate).

Fits must be made on the same data: their ``data_sha256`` (or, for bare InferenceData, a hash of the
observed data) must agree, otherwise `DataMismatchError` is raised.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

log = logging.getLogger(__name__)

__all__ = [
    "JOINT_VAR",
    "DataMismatchError",
    "GroupingError",
    "Comparison",
    "data_hash",
    "group_labels",
    "grouped_log_likelihood",
    "grouped_idata",
    "loo_grouped",
    "pareto_k_table",
    "compare_models",
    "verdict_text",
    "HypothesisComparison",
    "compare_fits",
    "kfold_group_elpd",
]

#: Name of the summed log-likelihood variable in the grouped InferenceData.
JOINT_VAR = "joint"
_SAMPLE_DIMS = ("chain", "draw")


class DataMismatchError(ValueError):
    """The fits to compare were made on different data."""


class GroupingError(ValueError):
    """The observations cannot be assigned to groups."""


# --------------------------------------------------------------------------- inputs


def _idata(obj: Any) -> az.InferenceData:
    idata = getattr(obj, "idata", obj)
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"expected a Fit or InferenceData, got {type(obj).__name__}")
    if "log_likelihood" not in idata.groups():
        raise ValueError("the InferenceData has no log_likelihood group (fit through mscbayes.inference.sample)")
    return idata


def data_hash(obj: Any) -> str:
    """The data identity of a fit: ``Fit.data_sha256``, else ``idata.attrs["data_sha256"]``, else a
    SHA-256 of the observed data (names, dims, values)."""
    sha = getattr(obj, "data_sha256", None)
    if isinstance(sha, str) and sha:
        return sha
    idata = getattr(obj, "idata", obj)
    attrs = getattr(idata, "attrs", {}) or {}
    if attrs.get("data_sha256"):
        value = str(attrs["data_sha256"])
        return value.strip('"')
    observed = getattr(idata, "observed_data", None)
    if observed is None:
        raise DataMismatchError("cannot tell which data this fit was made on (no data_sha256, no observed_data)")
    h = hashlib.sha256()
    for name in sorted(observed.data_vars):
        v = observed[name]
        h.update(name.encode())
        h.update(repr(v.dims).encode())
        h.update(np.ascontiguousarray(v.values).tobytes())
    return "observed:" + h.hexdigest()


def _obs_dims(da: xr.DataArray) -> tuple[str, ...]:
    return tuple(d for d in da.dims if d not in _SAMPLE_DIMS)


def _var_names(idata: az.InferenceData, var_names: Sequence[str] | None) -> list[str]:
    names = list(idata.log_likelihood.data_vars) if var_names is None else list(var_names)
    missing = [n for n in names if n not in idata.log_likelihood]
    if missing:
        raise KeyError(f"log_likelihood has no variable(s) {missing}; it has {list(idata.log_likelihood.data_vars)}")
    if not names:
        raise ValueError("log_likelihood is empty")
    return names


def group_labels(idata: az.InferenceData, var_name: str, group: str,
                 labels: Mapping[str, Sequence] | None = None) -> np.ndarray | None:
    """Group label of each observation of one log-likelihood variable (flattened over its
    observation dims in C order). Returns None when `group` is itself a dimension of the variable."""
    da = idata.log_likelihood[var_name]
    odims = _obs_dims(da)
    n = int(np.prod([da.sizes[d] for d in odims])) if odims else 1
    if labels is not None and var_name in labels:
        out = np.asarray(labels[var_name]).reshape(-1)
        if out.size != n:
            raise GroupingError(f"{var_name}: {out.size} labels given for {n} observations")
        return out
    if group in odims:
        return None
    if len(odims) != 1:
        raise GroupingError(
            f"{var_name} has observation dims {odims}; give labels={{{var_name!r}: [...]}} to group it by {group!r}")
    odim = odims[0]
    for gname in ("log_likelihood", "observed_data", "constant_data"):
        g = getattr(idata, gname, None)
        if g is not None and group in g.coords and g.coords[group].dims == (odim,):
            return np.asarray(g.coords[group].values)
    cd = getattr(idata, "constant_data", None)
    if cd is not None:
        for key in (f"{group}_index", f"{group}_idx"):
            if key in cd and cd[key].dims == (odim,):
                index = np.asarray(cd[key].values).astype(int)
                coord = None
                for gname in ("posterior", "constant_data", "observed_data", "log_likelihood"):
                    g = getattr(idata, gname, None)
                    if g is not None and group in g.coords:
                        coord = np.asarray(g.coords[group].values)
                        break
                if coord is None:
                    return index
                if index.min() < 0 or index.max() >= len(coord):
                    raise GroupingError(f"constant_data[{key!r}] indexes outside the {group!r} coordinate")
                return coord[index]
    raise GroupingError(
        f"cannot assign the observations of {var_name!r} (dim {odim!r}) to {group!r} groups: give labels=, "
        f"a {group!r} coordinate on {odim!r}, or constant_data '{group}_index' on {odim!r}")


def grouped_log_likelihood(fit_or_idata: Any, group: str, *, var_names: Sequence[str] | None = None,
                           labels: Mapping[str, Sequence] | None = None) -> xr.DataArray:
    """Joint log-likelihood per group: the sum over each group's observations of every selected
    log-likelihood variable. Returns a DataArray (chain, draw, group), groups in order of first appearance."""
    idata = _idata(fit_or_idata)
    names = _var_names(idata, var_names)
    totals: dict[Any, np.ndarray] = {}
    for name in names:
        da = idata.log_likelihood[name]
        odims = _obs_dims(da)
        lab = group_labels(idata, name, group, labels)
        if lab is None:  # group is a dim of the variable
            other = [d for d in odims if d != group]
            summed = da.sum(dim=other) if other else da
            summed = summed.transpose("chain", "draw", group)
            for j, g in enumerate(summed[group].values):
                arr = summed.values[:, :, j]
                totals[g] = totals[g] + arr if g in totals else arr.copy()
            continue
        values = da.transpose("chain", "draw", *odims).values.reshape(da.sizes["chain"], da.sizes["draw"], -1)
        for g in pd.unique(lab):
            arr = values[:, :, lab == g].sum(axis=-1)
            totals[g] = totals[g] + arr if g in totals else arr
    keys = list(totals)
    data = np.stack([totals[k] for k in keys], axis=-1)
    chain = idata.log_likelihood["chain"].values
    draw = idata.log_likelihood["draw"].values
    return xr.DataArray(data, dims=("chain", "draw", group), coords={"chain": chain, "draw": draw, group: keys},
                        name=JOINT_VAR)


def grouped_idata(fit_or_idata: Any, group: str | None, *, var_names: Sequence[str] | None = None,
                  labels: Mapping[str, Sequence] | None = None) -> az.InferenceData:
    """InferenceData with the posterior and one log-likelihood variable `JOINT_VAR`: per group when
    `group` is given, else the pointwise log-likelihood summed over the selected variables per observation
    (which must then share their observation dims)."""
    idata = _idata(fit_or_idata)
    if group is not None:
        ll = grouped_log_likelihood(idata, group, var_names=var_names, labels=labels)
    else:
        names = _var_names(idata, var_names)
        if len(names) == 1:
            ll = idata.log_likelihood[names[0]].rename(JOINT_VAR)
        else:
            dims = {_obs_dims(idata.log_likelihood[n]) for n in names}
            if len(dims) != 1:
                raise GroupingError(
                    f"variables {names} have different observation dims {sorted(dims)}; compare them per variable "
                    "(var_names=[...]) or by a grouping coordinate (group=...)")
            ll = sum(idata.log_likelihood[n] for n in names).rename(JOINT_VAR)
    groups = {"log_likelihood": xr.Dataset({JOINT_VAR: ll})}
    if "posterior" in idata.groups():
        groups["posterior"] = idata.posterior
    return az.InferenceData(**groups)


def loo_grouped(fit_or_idata: Any, group: str | None, *, var_names: Sequence[str] | None = None,
                labels: Mapping[str, Sequence] | None = None) -> az.ELPDData:
    """PSIS-LOO over groups (leave-one-group-out), pointwise results included."""
    gi = grouped_idata(fit_or_idata, group, var_names=var_names, labels=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Pareto-k table reports what the warnings would say
        return az.loo(gi, pointwise=True, var_name=JOINT_VAR)


def pareto_k_table(loos: Mapping[str, az.ELPDData], group: str | None = None) -> pd.DataFrame:
    """One row per model × group (or observation): ``pareto_k``, the sample-size-dependent ``good_k``
    (min(1 − 1/log10 S, 0.7)) and ``ok`` = k ≤ good_k."""
    rows = []
    for model, elpd in loos.items():
        k = elpd.pareto_k
        good = float(getattr(elpd, "good_k", 0.7))
        unit = group or (k.dims[0] if k.dims else "obs")
        labels = k.coords[k.dims[0]].values if k.dims and k.dims[0] in k.coords else np.arange(k.size)
        for lab, val in zip(labels, np.asarray(k.values).reshape(-1)):
            rows.append({"model": model, unit: lab, "pareto_k": float(val), "good_k": good,
                         "ok": bool(np.isfinite(val) and val <= good)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- comparison


#: An elpd difference below this (nats) means "predict alike", whatever its SE: for small differences
#: the SE of the difference is itself unreliable (Sivula, Magnusson, Matamoros & Vehtari, "Uncertainty in
#: Bayesian leave-one-out cross-validation based model comparison", arXiv:2008.10296, §5).
MIN_ELPD_DIFF: float = 4.0


@dataclass
class Comparison:
    """Result of `compare_models`."""

    table: pd.DataFrame                 # az.compare (stacking) + weight_bb_pseudo_bma + n_groups, good_k, n_high_k
    pareto_k: pd.DataFrame              # pareto_k_table
    loo: dict[str, az.ELPDData] = field(repr=False)
    group: str | None
    data_sha256: str
    verdict: str

    @property
    def weights(self) -> pd.Series:
        """Stacking weights by model."""
        return self.table["weight"]

    @property
    def best(self) -> str:
        return str(self.table.index[0])

    @property
    def reliable(self) -> bool:
        """All Pareto-k within good_k."""
        return bool(self.pareto_k["ok"].all()) if len(self.pareto_k) else False

    def separated(self, a: str, b: str, z: float = 2.0) -> bool:
        """True when the elpd difference between models a and b exceeds z standard errors and
        `MIN_ELPD_DIFF` (below that the models predict alike and the SE itself is unreliable)."""
        t = self.table
        d = abs(float(t.loc[a, "elpd_loo"]) - float(t.loc[b, "elpd_loo"]))
        best = str(t.index[0])
        if best in (a, b):
            other = b if best == a else a
            se = float(t.loc[other, "dse"])
        else:
            se = math.hypot(float(t.loc[a, "dse"]), float(t.loc[b, "dse"]))
        return bool(d > MIN_ELPD_DIFF and (d > z * se if se > 0 else True))

    def __str__(self) -> str:
        cols = [c for c in ("elpd_loo", "se", "elpd_diff", "dse", "weight", "weight_bb_pseudo_bma", "n_high_k")
                if c in self.table.columns]
        return f"{self.table[cols].to_string()}\n\n{self.verdict}"


def compare_models(fits: Mapping[str, Any], *, group: str | None = None, var_names: Sequence[str] | None = None,
                   labels: Mapping[str, Mapping[str, Sequence]] | None = None, seed: int = 0,
                   b_samples: int = 1000, check_data: bool = True) -> Comparison:
    """Compare fits of competing models on the same data by (grouped) PSIS-LOO and stacking.

    fits: ``{name: Fit or InferenceData}`` (at least two); group: the grouping coordinate (``"donor"``,
    ``"animal"``, ``"study"``) or None for pointwise LOO; var_names: log-likelihood variables to use
    (default all); labels: optional ``{model: {var_name: labels}}``; seed: for the BB-pseudo-BMA
    bootstrap; check_data: refuse fits made on different data (`DataMismatchError`).
    """
    if not isinstance(fits, Mapping) or len(fits) < 2:
        raise ValueError("compare_models needs a mapping of at least two named fits")
    for f in fits.values():
        _idata(f)  # each must carry a log_likelihood group
    hashes = {name: data_hash(f) for name, f in fits.items()}
    if check_data and len(set(hashes.values())) > 1:
        listing = ", ".join(f"{n}: {h[:12]}" for n, h in hashes.items())
        raise DataMismatchError(
            "the fits were made on different data, so their LOO scores are not comparable "
            f"(data_sha256 {listing}); refit every model on the same table")
    loos: dict[str, az.ELPDData] = {}
    n_units = set()
    for name, f in fits.items():
        loos[name] = loo_grouped(f, group, var_names=var_names, labels=(labels or {}).get(name))
        n_units.add(int(loos[name].n_data_points))
    if len(n_units) > 1:
        raise DataMismatchError(f"the fits have different numbers of {'groups' if group else 'observations'}: "
                                f"{sorted(n_units)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(loos, ic="loo", method="stacking")
        bb = az.compare(loos, ic="loo", method="BB-pseudo-BMA", b_samples=b_samples, seed=seed)
    table = table.copy()
    table["weight_bb_pseudo_bma"] = bb["weight"].reindex(table.index)
    ktab = pareto_k_table(loos, group)
    table["n_groups" if group else "n_obs"] = [int(loos[m].n_data_points) for m in table.index]
    table["good_k"] = [float(getattr(loos[m], "good_k", 0.7)) for m in table.index]
    table["n_high_k"] = [int((~ktab.loc[ktab["model"] == m, "ok"]).sum()) for m in table.index]
    table.index.name = "model"
    sha = next(iter(hashes.values()))
    return Comparison(table=table, pareto_k=ktab, loo=loos, group=group, data_sha256=sha,
                      verdict=verdict_text(table, ktab, group))


def untrustworthy_verdict(verdict: str, models: Sequence[str]) -> str:
    """`verdict` led by a warning when the fits of `models` failed their sampler diagnostics: a comparison of
    unconverged fits is not reliable, whatever its Pareto k say."""
    if not models:
        return verdict
    verdict = verdict.replace("so the LOO estimates are reliable",
                              "but that does not make these estimates reliable: the fits themselves failed")
    return (f"UNTRUSTWORTHY comparison: the fits of {', '.join(models)} failed their sampler diagnostics, so the "
            f"numbers below are not reliable; refit them before reading this comparison. {verdict}")


def verdict_text(table: pd.DataFrame, pareto_k: pd.DataFrame | None, group: str | None) -> str:
    """A plain-words paragraph: which model the data favour, how clearly, and how far to trust it.
    `pareto_k` None: the estimates are exact (K-fold refits), so nothing is said about importance sampling."""
    unit = group or "observation"
    n_col = "n_groups" if "n_groups" in table.columns else "n_obs"
    n = int(table[n_col].iloc[0]) if n_col in table.columns else int(pareto_k.groupby("model").size().max())
    best = str(table.index[0])
    w = float(table["weight"].iloc[0])
    parts = [
        f"{len(table)} models were compared by leave-one-{unit}-out PSIS-LOO over {n} {unit}s"
        + ("" if group else " (pointwise)") + "."
    ]
    bb = table["weight_bb_pseudo_bma"].iloc[0] if "weight_bb_pseudo_bma" in table.columns else float("nan")
    parts.append(f"Stacking puts {w:.0%} of the weight on '{best}' (BB-pseudo-BMA: {bb:.0%}).")
    if len(table) > 1:
        second = str(table.index[1])
        diff = float(table["elpd_diff"].iloc[1])
        dse = float(table["dse"].iloc[1])
        z = diff / dse if dse > 0 else (math.inf if diff > 0 else 0.0)
        if diff <= MIN_ELPD_DIFF:
            strength = "not clearly different"
        elif z >= 4:
            strength = "clearly better"
        elif z >= 2:
            strength = "better"
        else:
            strength = "not clearly different"
        parts.append(f"'{best}' is {strength} than the runner-up '{second}': expected log predictive density "
                     f"higher by {diff:.1f} (SE of the difference {dse:.1f}).")
        others = [str(m) for m, ww in zip(table.index[1:], table["weight"].iloc[1:]) if ww > 0.1]
        if others:
            parts.append(f"Models that still carry weight: {', '.join(others)}; the data do not rule them out.")
    bad = None if pareto_k is None else pareto_k.loc[~pareto_k["ok"]]
    if bad is not None and len(bad):
        good_k = float(pareto_k["good_k"].iloc[0])
        per_model = bad.groupby("model").size()
        listing = ", ".join(f"{m} {c}/{n}" for m, c in per_model.items())
        parts.append(
            f"Caution: Pareto k above {good_k:.2f} for {listing} {unit}s, so those importance-sampling "
            f"estimates are unreliable; an exact leave-one-{unit}-out refit (K-fold by {unit}) would settle it.")
    elif bad is not None:
        parts.append("All Pareto k values are below the threshold, so the LOO estimates are reliable.")
    if n < 10:
        parts.append(f"With only {n} {unit}s the comparison rests on few units; treat the weights as indicative.")
    return " ".join(parts)


# =========================================================================== in vivo hypotheses

#: Number of folds of the exact K-fold fallback (by group) when PSIS-LOO is unreliable.
KFOLD_DEFAULT = 5


@dataclass
class HypothesisComparison(Comparison):
    """`Comparison` of fitted hypotheses plus what the comparison rests on.

    method: "psis-loo" or "kfold" (exact K-fold by group, used when any Pareto k > good_k);
    kfold: per model the held-out elpd per group when K-fold ran; names: model name → source (path or label).
    """

    method: str = "psis-loo"
    kfold: dict = field(default_factory=dict, repr=False)
    names: dict = field(default_factory=dict)
    psis_table: pd.DataFrame | None = field(default=None, repr=False)
    untrustworthy: tuple[str, ...] = ()     # compared models whose fits failed their sampler diagnostics

    def verdict_text(self) -> str:
        return self.verdict


    def save(self, path, *, force: bool = False):
        """Write the table, the Pareto-k table, the verdict and the data hash to one NetCDF file."""
        from pathlib import Path

        from .provenance import atomic_write, ensure_writable

        target = Path(path)
        ensure_writable(target, force=force, what="comparison file")
        table = self.table.copy()
        ds = xr.Dataset({c: ("model", table[c].to_numpy(dtype=float)) for c in table.columns
                         if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])},
                        coords={"model": [str(m) for m in table.index]})
        k = self.pareto_k
        unit = self.group or "obs"
        ds["pareto_k"] = ("k_row", k["pareto_k"].to_numpy(dtype=float))
        ds = ds.assign_coords(k_model=("k_row", k["model"].astype(str).to_numpy()),
                              k_group=("k_row", k[unit].astype(str).to_numpy() if unit in k else np.arange(len(k)).astype(str)))
        ds.attrs.update({"verdict": self.verdict, "data_sha256": self.data_sha256, "group": str(self.group),
                         "method": self.method, "sources": repr(self.names),
                         "untrustworthy": ",".join(self.untrustworthy)})
        atomic_write(target, lambda p: ds.to_netcdf(str(p), engine="h5netcdf"), force=force, what="comparison file")
        return target


def _load_fit(obj: Any):
    from pathlib import Path

    if isinstance(obj, (str, Path)):
        from .inference import Fit

        return Fit.load(obj, rebuild=False), str(obj)
    return obj, None


def _family_of(fits: Mapping[str, Any]):
    """The one model family of `fits` (None for bare InferenceData); fits of different families are refused."""
    from . import families

    kinds = {getattr(f, "kind", None) for f in fits.values()}
    if len(kinds) > 1:
        raise DataMismatchError(f"the fits are of different models {sorted(map(str, kinds))}; compare the "
                                "hypotheses of one model fitted to the same data")
    kind = next(iter(kinds))
    return None if kind is None else families.get(kind)


def _labels_for(fit: Any, family, group: str) -> dict | None:
    """Observation labels of each log-likelihood variable by `group` (None when the family has none)."""
    data = getattr(fit, "data", None)
    if family is None or data is None:
        return None
    labels = family.groups(data, group)
    if labels is None:
        return None
    ll = fit.idata.log_likelihood
    return {k: v for k, v in labels.items() if k in ll}


def compare_fits(fits: Any, *, group: str | None = "default", out: Any = None, seed: int = 0,
                 kfold: bool | str = "auto", k_folds: int = KFOLD_DEFAULT, kfold_settings: Any = None,
                 force: bool = False) -> HypothesisComparison:
    """Compare fits of competing hypotheses of one model on the same data: leave-one-group-out PSIS-LOO,
    stacking and BB-pseudo-BMA weights, a Pareto-k table, and exact K-fold by group when k is high.

    fits: paths of saved fits, Fit objects, or a mapping name → either (names default to the hypothesis,
    else the file stem); group: the leave-out unit ("default": the model family's, e.g. animal for the fate
    and mechanism models, donor for Treg rules, whose comparison uses each donor's new-donor likelihood,
    `Family.loo_view`), None for pointwise, or any grouping `compare_models` understands; kfold: "auto" (when any Pareto k >
    good_k), True (always) or False (never);
    k_folds: folds of the fallback; kfold_settings: SamplerSettings for the refits (default: each fit's own);
    out: also save the comparison there. Raises `DataMismatchError` for fits made on different data.
    """
    if isinstance(fits, Mapping):
        items = list(fits.items())
    else:
        items = [(None, f) for f in fits]
    loaded: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, obj in items:
        fit, src = _load_fit(obj)
        if name is None:
            from pathlib import Path

            name = getattr(fit, "hypothesis", None) or (Path(src).stem if src else f"model{len(loaded) + 1}")
        if name in loaded:
            name = f"{name}#{len(loaded) + 1}"
        loaded[str(name)] = fit
        sources[str(name)] = src or str(name)
    if len(loaded) < 2:
        raise ValueError("compare_fits needs at least two fits")
    family = _family_of(loaded)
    if group == "default":
        group = family.default_group if family is not None else "animal"
    compared = loaded
    if family is not None and family.loo_view is not None and group == family.default_group:
        compared = {}
        for n, f in loaded.items():
            compared[n], group = family.loo_view(f)
        labels = {}
    else:
        labels = {n: lab for n, f in loaded.items() if (lab := _labels_for(f, family, group)) is not None}
    base = compare_models(compared, group=group, labels=labels or None, seed=seed)
    result = HypothesisComparison(table=base.table, pareto_k=base.pareto_k, loo=base.loo, group=base.group,
                                  data_sha256=base.data_sha256, verdict=base.verdict, names=sources)
    run_kfold = kfold is True or (kfold == "auto" and not base.reliable)
    if run_kfold:
        try:
            result = _with_kfold(result, loaded, labels, group, k_folds, kfold_settings, seed)
        except ValueError as err:
            if kfold is True:
                raise
            # automatic fallback not possible for these fits: keep PSIS-LOO and say so in the verdict
            result.verdict = (f"{result.verdict} Exact K-fold by {group} was not possible ({err}); the PSIS-LOO "
                              "numbers above are flagged by their Pareto k and should be read with caution.")
    t = result.table
    if len(t) > 1 and not result.separated(str(t.index[0]), str(t.index[1])):
        result.verdict += (f" In plain words: these data do not separate '{t.index[0]}' from '{t.index[1]}'; "
                           "a design that perturbs what distinguishes them is needed to tell them apart.")
    result.untrustworthy = tuple(n for n, f in loaded.items() if not getattr(f, "trustworthy", True))
    result.verdict = untrustworthy_verdict(result.verdict, result.untrustworthy)
    if out is not None:
        result.save(out, force=force)
    return result


def kfold_group_elpd(fit: Any, labels: Mapping[str, Sequence], k_folds: int = KFOLD_DEFAULT, *,
                     settings: Any = None, seed: int = 0) -> pd.Series:
    """Exact K-fold by group: for each fold, the model is refitted with the fold's observations weighted
    0 (its `w_<var>` pm.Data), then the weights are set back to 1 and the held-out groups are scored with
    the refitted posterior: elpd_g = log mean_s exp(Σ_{i∈g} log p(y_i | θ_s)). The model is built once
    and only its data are swapped between folds. Returns elpd per group (Series)."""
    import pymc as pm
    from scipy.special import logsumexp

    from .inference import sample

    model = fit.model()
    weights = getattr(model, "mscbayes_weights", None)
    if not weights:
        raise ValueError(f"K-fold needs a model with observation weights (mechanism models); kind {fit.kind!r} has none")
    groups = list(dict.fromkeys(np.concatenate([np.asarray(v) for v in labels.values()])))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(groups, rng.permutation(np.arange(len(groups)) % max(1, min(k_folds, len(groups))))))
    settings = settings or fit.settings
    elpd = {}
    try:
        folds = sorted(set(fold_of.values()))
        for k in folds:
            held = {g for g, f in fold_of.items() if f == k}
            log.info("K-fold refit %d/%d of %s (%d of %d groups held out)", k + 1, len(folds),
                     fit.hypothesis or fit.kind, len(held), len(groups))
            with model:
                pm.set_data({weights[v].name: (~np.isin(np.asarray(lab), list(held))).astype(float)
                             for v, lab in labels.items() if v in weights})
            idata = sample(model, settings=settings, seed=int(seed) + k, progress=False)
            with model:
                pm.set_data({weights[v].name: np.ones(len(lab)) for v, lab in labels.items() if v in weights})
                ll = pm.compute_log_likelihood(idata, model=model, extend_inferencedata=False, progressbar=False)
            for g in held:
                total = 0.0
                for v, lab in labels.items():
                    mask = np.asarray(lab) == g
                    if mask.any():
                        arr = ll[v].values.reshape(ll[v].sizes["chain"] * ll[v].sizes["draw"], -1)
                        total = total + arr[:, mask].sum(axis=1)
                elpd[g] = float(logsumexp(total) - np.log(len(total)))
    finally:
        with model:
            pm.set_data({weights[v].name: np.ones(len(lab)) for v, lab in labels.items() if v in weights})
    return pd.Series(elpd).reindex(groups)


def _with_kfold(result: HypothesisComparison, fits: dict, labels: dict, group: str, k_folds: int,
                settings: Any, seed: int) -> HypothesisComparison:
    elpds = {}
    loos = {}
    for name, fit in fits.items():
        lab = labels.get(name)
        if lab is None:
            raise ValueError(f"K-fold by {group} needs observation labels for {name!r}")
        e = kfold_group_elpd(fit, lab, k_folds, settings=settings, seed=seed)
        elpds[name] = e
        base = result.loo[name]
        new = base.copy()
        loo_i = base.loo_i.copy()
        order = [str(g) for g in loo_i.coords[loo_i.dims[0]].values] if loo_i.dims and loo_i.dims[0] in loo_i.coords else None
        values = e.reindex(order).to_numpy() if order is not None and set(order) <= set(map(str, e.index)) else e.to_numpy()
        loo_i.values = values
        new["loo_i"] = loo_i
        new["elpd_loo"] = float(values.sum())
        new["se"] = float(np.sqrt(len(values) * np.var(values)))
        new["pareto_k"] = xr.zeros_like(base.pareto_k)
        new["warning"] = False
        loos[name] = new
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(loos, ic="loo", method="stacking")
        bb = az.compare(loos, ic="loo", method="BB-pseudo-BMA", seed=seed)
    table = table.copy()
    table["weight_bb_pseudo_bma"] = bb["weight"].reindex(table.index)
    table["n_groups"] = [int(loos[m].n_data_points) for m in table.index]
    table["good_k"] = np.nan
    table["n_high_k"] = 0
    table.index.name = "model"
    psis_bad = result.pareto_k.loc[~result.pareto_k["ok"]]
    verdict = verdict_text(table, None, group)
    verdict = verdict.replace("PSIS-LOO", f"exact {k_folds}-fold cross-validation")
    verdict += (f" PSIS-LOO was not trusted here ({len(psis_bad)} Pareto k above the threshold), so every model "
                f"was refitted {k_folds} times with whole {group}s held out.")
    return HypothesisComparison(table=table, pareto_k=result.pareto_k, loo=loos, group=group,
                                data_sha256=result.data_sha256, verdict=verdict, method="kfold", kfold=elpds,
                                names=result.names, psis_table=result.table)

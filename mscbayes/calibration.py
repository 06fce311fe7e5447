"""Simulation-based calibration (SBC; Talts et al. 2018, arXiv:1804.06788; Modrák et al. 2023, Bayesian Anal.,
doi:10.1214/23-BA1404) of a model family on a design: is the posterior the model reports calibrated, when the
data come from the model itself?

    sbc(family, design, replicates=100, settings=..., seed=0, out_dir="sbc/") -> SBCResult

Each replicate draws a truth from the family's prior (`Family.draw_truth`, from the same resolved prior table
the model is built with), simulates the design with it (`Family.simulate`), fits the model (`inference.sample`:
nutpie compiles a family's model once per process and swaps the data in) and records the rank of the truth
among ``L`` thinned posterior draws, for every population parameter the truth gives by the model's names
(`Truth.model`, one rank per element of a vector) and for the family's derived quantities (`Family.derived`,
evaluated at the truth with ``pm.do`` when they depend on population parameters only). With a calibrated model
and sampler the ranks are uniform on 0..L. Whether each fit passed `diagnostics.diagnose` is recorded; failing
replicates are kept (the rate is reported), since dropping them would bias the ranks.

Thinning: the ``L`` draws (default `RANKED_DRAWS` = 99, so 100 possible ranks) are taken evenly spaced from every
chain, e.g. every 10th of 2 chains × 500 draws, which keeps their autocorrelation low (Talts et al. §4.1).

Uniformity, per quantity: the ECDF test with simultaneous bands (Säilynoja, Bürkner & Vehtari 2022, Stat. Comput.
32:32): the ranks' ECDF at 0..L−1 is compared with the uniform CDF through the smallest two-sided binomial tail
probability over the points; its null distribution is simulated with uniform integer ranks, which gives the p-value
and the pointwise level of the simultaneous 95 % band in the ECDF-difference plot (outside the band ⇔ p < 0.05).
A chi-square test of `HISTOGRAM_BINS` equal rank bins is reported beside it. The replicates run through
`mscbayes.sweep.run_sweep` (Dask, resumable; ``scheduler="serial"`` in this process).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from . import families
from .diagnostics import REPLICATE_THRESHOLDS, diagnose
from .inference import SamplerSettings, sample
from .sweep import Task, run_sweep

__all__ = ["SBCResult", "SBCError", "sbc", "sbc_replicate", "rank_of", "thin", "uniformity_test", "ecdf_band",
           "RANKED_DRAWS", "LEVEL", "HISTOGRAM_BINS", "DEFAULT_SETTINGS", "SBC_THRESHOLDS"]

log = logging.getLogger(__name__)

#: Thinned posterior draws the truth is ranked among (ranks 0..RANKED_DRAWS).
RANKED_DRAWS = 99
#: Level of each quantity's uniformity test (and 1 − the coverage of the plotted simultaneous band).
LEVEL = 0.05
#: Equal-width bins of the rank histogram and the chi-square test (100 ranks → 5 ranks a bin).
HISTOGRAM_BINS = 20
#: Uniform rank sets simulated for the ECDF test's null distribution.
NULL_TRIALS = 4000
#: Sampler settings of an SBC fit when none are given: 2 chains × 500 draws, thinned to 99 (every 10th).
DEFAULT_SETTINGS = SamplerSettings(draws=500, tune=500, chains=2, cores=1)
#: `diagnose` thresholds of an SBC fit when none are given (the replicate gate, `diagnostics.REPLICATE_THRESHOLDS`).
SBC_THRESHOLDS = REPLICATE_THRESHOLDS

_RANK, _TRUTH = "rank:", "truth:"


class SBCError(ValueError):
    """The family or the settings cannot be calibrated as asked (the message says why)."""


# ------------------------------------------------------------------------------------------ ranks


def thin(draws: np.ndarray, n: int = RANKED_DRAWS) -> np.ndarray:
    """`n` draws taken evenly spaced from every chain of `draws` (chain, draw), as equal a share per chain as
    `n` allows. Raises SBCError when there are fewer than `n` draws."""
    draws = np.asarray(draws, dtype=float)
    if draws.ndim == 1:
        draws = draws[None, :]
    chains, per_chain = draws.shape
    if chains * per_chain < n:
        raise SBCError(f"SBC ranks the truth among {n} thinned draws, but the fit has only "
                       f"{chains} chains × {per_chain} draws; use more draws")
    shares = [n // chains + (c < n % chains) for c in range(chains)]
    picked = [draws[c, np.linspace(0, per_chain - 1, k).round().astype(int)] for c, k in enumerate(shares) if k]
    return np.concatenate(picked)


def rank_of(truth: float, draws: np.ndarray, rng: np.random.Generator | None = None) -> int:
    """Number of `draws` below `truth` (0..len(draws)); ties (a discrete or stuck quantity) are broken at random."""
    draws = np.asarray(draws, dtype=float).ravel()
    below = int((draws < truth).sum())
    ties = int((draws == truth).sum())
    if ties:
        below += int((rng or np.random.default_rng(0)).integers(0, ties + 1))
    return below


# ------------------------------------------------------------------------------------------ uniformity


def _min_tail(counts: np.ndarray, n: int, p: np.ndarray) -> np.ndarray:
    """Smallest two-sided binomial tail probability of ECDF counts (..., K) at CDF values p (K,)."""
    lower = stats.binom.cdf(counts, n, p)
    upper = stats.binom.sf(counts - 1, n, p)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper)).min(axis=-1)


@lru_cache(maxsize=16)
def _null(n: int, L: int, trials: int = NULL_TRIALS, seed: int = 0) -> np.ndarray:
    """The test statistic for `trials` sets of `n` uniform ranks on 0..L (sorted)."""
    rng = np.random.default_rng(seed)
    k = np.arange(L)
    out = np.empty(trials)
    for start in range(0, trials, 500):  # blocks keep memory small
        sim = rng.integers(0, L + 1, size=(min(500, trials - start), n))
        counts = (sim[:, :, None] <= k).sum(axis=1)
        out[start:start + len(sim)] = _min_tail(counts, n, (k + 1) / (L + 1))
    return np.sort(out)


def uniformity_test(ranks, L: int = RANKED_DRAWS, *, bins: int = HISTOGRAM_BINS) -> dict:
    """Uniformity of `ranks` on 0..L: ``p_ecdf`` (the ECDF test with simultaneous bands, Säilynoja et al. 2022;
    Monte Carlo p-value from `NULL_TRIALS` uniform sets), ``p_chi2`` (chi-square on `bins` equal bins) and ``n``."""
    ranks = np.asarray(ranks, dtype=int)
    n = len(ranks)
    if n == 0:
        return {"n": 0, "p_ecdf": np.nan, "p_chi2": np.nan}
    if ranks.min() < 0 or ranks.max() > L:
        raise ValueError(f"ranks must lie in 0..{L}, got {ranks.min()}..{ranks.max()}")
    k = np.arange(L)
    counts = np.cumsum(np.bincount(ranks, minlength=L + 1))[:L]
    stat = _min_tail(counts, n, (k + 1) / (L + 1))
    null = _null(n, L)
    p_ecdf = (1 + np.searchsorted(null, stat, side="right")) / (1 + len(null))
    bins = max(1, min(bins, L + 1))
    observed = np.bincount(ranks * bins // (L + 1), minlength=bins)
    expected = np.bincount(np.arange(L + 1) * bins // (L + 1), minlength=bins) * n / (L + 1)
    p_chi2 = float(stats.chisquare(observed, expected).pvalue) if bins > 1 else 1.0
    return {"n": n, "p_ecdf": float(p_ecdf), "p_chi2": p_chi2}


def ecdf_band(n: int, L: int = RANKED_DRAWS, prob: float = 1 - LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, lower, upper): the simultaneous `prob` band of the ECDF of `n` uniform ranks on 0..L at
    u = (k + 1)/(L + 1), k = 0..L−1, as the ECDF minus u (the difference plot's band)."""
    k = np.arange(L)
    u = (k + 1) / (L + 1)
    gamma = float(np.quantile(_null(n, L), 1 - prob))   # pointwise level giving the simultaneous coverage
    lower = stats.binom.ppf(gamma / 2, n, u) / n
    upper = stats.binom.isf(gamma / 2, n, u) / n
    return u, lower - u, upper - u


# ------------------------------------------------------------------------------------------ one replicate


def _targets(truth_model: Mapping, posterior) -> list[tuple[str, np.ndarray, float]]:
    """(quantity, draws (chain, draw), true value) for every truth the posterior has, element by element."""
    out = []
    for name, value in truth_model.items():
        if name not in posterior:
            continue
        da = posterior[name]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        if isinstance(value, Mapping):
            if len(dims) != 1:
                continue
            labels = [str(v) for v in da[dims[0]].values]
            for label, v in value.items():
                if str(label) in labels:
                    out.append((f"{name}[{label}]", da.isel({dims[0]: labels.index(str(label))}).values, float(v)))
        elif int(np.prod([da.sizes[d] for d in dims])) == 1:
            out.append((name, da.values.reshape(da.sizes["chain"], da.sizes["draw"]), float(value)))
    return out


#: Per process: the compiled function of a family's derived quantities at a truth, by (family, hypothesis,
#: design, priors): every replicate of a sweep has the same graph, only the truth (shared variables) changes.
_DERIVED_FUNCTIONS: dict = {}


def _fixed_values(model, truth_model: Mapping, skip) -> dict[str, np.ndarray]:
    """The truth as values of the model's variables (a {label: value} truth ordered by the variable's coords)."""
    fixed = {}
    for name, value in truth_model.items():
        if name not in model.named_vars or name in skip:
            continue
        if isinstance(value, Mapping):
            dims = model.named_vars_to_dims.get(name) or ()
            given = {str(k): v for k, v in value.items()}
            if len(dims) != 1 or set(map(str, model.coords[dims[0]])) - set(given):
                continue
            value = [float(given[str(label)]) for label in model.coords[dims[0]]]
        fixed[name] = np.asarray(value, dtype=model.named_vars[name].dtype)
    return fixed


def _derived_truth(model, family: families.Family, truth_model: Mapping, key: str = "") -> dict[str, np.ndarray]:
    """The family's derived quantities at the truth: the model with its population parameters fixed at the truth
    (``pm.do``, with the values in shared variables), each derived quantity that then depends on no free variable
    evaluated. {name: values}. `key` identifies the graph (same design and priors) for reuse within a process."""
    import pymc as pm
    import pytensor
    from pytensor.graph.traversal import ancestors

    names = [d for d in family.derived if d in model.named_vars]
    if not names:
        return {}
    fixed = _fixed_values(model, truth_model, names)
    entry = _DERIVED_FUNCTIONS.get(key) if key else None
    if entry is None or set(entry[0]) != set(fixed):
        shared = {n: pytensor.shared(v, name=f"sbc_truth_{n}") for n, v in fixed.items()}
        intervened = pm.do(model, shared)
        graphs, evaluable = [], []
        for name in names:
            graph = intervened.replace_rvs_by_values([intervened[name]])[0]
            if not set(ancestors([graph])) & set(intervened.value_vars):   # no free variable left
                graphs.append(graph)
                evaluable.append(name)
        fn = pytensor.function([], graphs) if graphs else (lambda: [])
        entry = (shared, evaluable, fn)
        # reusable only when no data of the replicate (a pm.Data) feeds the derived quantities
        data = {v for v in model.data_vars}
        if key and not set(ancestors(graphs)) & data:
            _DERIVED_FUNCTIONS[key] = entry
    shared, evaluable, fn = entry
    for n, v in fixed.items():
        shared[n].set_value(v)
    return {n: np.asarray(v, dtype=float).ravel() for n, v in zip(evaluable, fn())}


def _derived_targets(values: Mapping[str, np.ndarray], model, posterior) -> list[tuple[str, np.ndarray, float]]:
    out = []
    for name, vals in values.items():
        da = posterior[name]
        flat = da.values.reshape(da.sizes["chain"], da.sizes["draw"], -1)
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        labels = [str(x) for x in da[dims[0]].values] if len(dims) == 1 and len(vals) > 1 else [None] * len(vals)
        for j, (label, v) in enumerate(zip(labels, vals)):
            if np.isfinite(v):
                out.append((name if label is None else f"{name}[{label}]", flat[:, :, j], float(v)))
    return out


def replicate_seeds(seed: int, replicate: int) -> tuple[int, int, int, int]:
    """(truth, simulation, fit, tie-breaking) seeds of one replicate, from the study seed and its number."""
    return tuple(int(s) for s in np.random.SeedSequence([int(seed), int(replicate)]).generate_state(4))


def sbc_replicate(payload: dict) -> dict:
    """One SBC replicate (the sweep's task function): draw a truth, simulate, fit, rank. `payload`: family (name),
    design (the family's design object), priors (resolved table), hypothesis, settings (dict), seed, replicate,
    ranked_draws, thresholds (for `diagnose`). Returns one row of JSON scalars: ``rank:<quantity>``,
    ``truth:<quantity>``, whether the fit passed its diagnostics, and its divergences."""
    family = families.get(payload["family"])
    hypothesis, priors, design = payload["hypothesis"], payload["priors"], payload["design"]
    L = int(payload.get("ranked_draws", RANKED_DRAWS))
    truth_seed, sim_seed, fit_seed, tie_seed = replicate_seeds(payload["seed"], payload["replicate"])
    truth = family.draw_truth(design, priors, np.random.default_rng(truth_seed), hypothesis)
    simulated = family.simulate(design, seed=sim_seed, params=truth.params, hypothesis=hypothesis)
    frame = family.read_table(simulated).frame
    family.check_data(frame, hypothesis)
    model = family.build(frame, priors, hypothesis)
    idata = sample(model, settings=SamplerSettings.from_dict(payload["settings"]), seed=fit_seed, progress=False,
                   log_likelihood=False)
    diag = diagnose(idata, **dict(payload.get("thresholds") or {}))
    post = idata.posterior
    targets = _targets(truth.model, post)
    key = repr((family.name, hypothesis, design, sorted((k, p.to_dict()) for k, p in priors.items())))
    targets += _derived_targets(_derived_truth(model, family, truth.model, key), model, post)
    rng = np.random.default_rng(tie_seed)
    row: dict[str, Any] = {"replicate": int(payload["replicate"]), "passed": bool(diag.passed),
                           "problems": "" if diag.passed else diag.text(),
                           "divergences": int(idata.sample_stats["diverging"].sum()) if "diverging" in
                           idata.sample_stats else 0}
    for quantity, draws, value in targets:
        row[_RANK + quantity] = rank_of(value, thin(draws, L), rng)
        row[_TRUTH + quantity] = value
    return row


# ------------------------------------------------------------------------------------------ the study


@dataclass
class SBCResult:
    """Result of `sbc`. ``ranks``: one row per (replicate, quantity): truth, rank (0..L), whether that replicate's
    fit passed its diagnostics. ``uniformity``: one row per quantity: replicates, p-values of the ECDF test and of
    the chi-square test, and whether uniformity is rejected at `level` (each quantity) and after Bonferroni over
    the quantities. ``replicates``: the sweep's table (one row per replicate, with its seconds)."""

    family: str
    hypothesis: str | None
    ranks: pd.DataFrame
    uniformity: pd.DataFrame
    replicates: pd.DataFrame
    ranked_draws: int = RANKED_DRAWS
    level: float = LEVEL
    settings: dict = field(default_factory=dict)

    @property
    def pass_rate(self) -> float:
        """Fraction of replicates whose fit passed its diagnostics."""
        return float(self.replicates["passed"].mean()) if len(self.replicates) else float("nan")

    def rejected(self) -> list[str]:
        """Quantities whose uniformity the ECDF test rejects at `level`."""
        return list(self.uniformity.index[self.uniformity["rejected"]])

    def plot_histograms(self):
        """Rank histograms (`HISTOGRAM_BINS` bins), the central 99 % range of a uniform bin count shaded (Talts et
        al. 2018 Fig. 3). Returns (fig, axes)."""
        import matplotlib.pyplot as plt

        fig, axes, quantities = _grid(self.uniformity.index)
        bins = HISTOGRAM_BINS
        for ax, q in zip(axes, quantities):
            r = self.ranks.loc[self.ranks["quantity"] == q, "rank"].to_numpy(int)
            counts = np.bincount(r * bins // (self.ranked_draws + 1), minlength=bins)
            n = len(r)
            lo, hi = stats.binom.interval(0.99, n, 1 / bins)
            ax.axhspan(lo, hi, color="0.85", zorder=0)
            ax.axhline(n / bins, color="0.5", lw=0.8)
            ax.bar(np.arange(bins), counts, width=1.0, color="C0", edgecolor="white")
            self._title(ax, q)
            ax.set_xticks([])
        for ax in axes[len(quantities):]:
            ax.set_visible(False)
        fig.suptitle(f"SBC rank histograms: {self.family}{' ' + self.hypothesis if self.hypothesis else ''} "
                     f"({len(self.replicates)} replicates, ranks among {self.ranked_draws} draws; grey: 99 % of a "
                     f"uniform bin)", fontsize=9)
        fig.supxlabel(f"rank of the truth among {self.ranked_draws} posterior draws ({bins} bins)", fontsize=8)
        fig.supylabel("replicates", fontsize=8)
        plt.tight_layout(rect=(0, 0, 1, 0.97))
        return fig, axes

    def plot_ecdf(self):
        """ECDF-difference plots of the fractional ranks with the simultaneous 95 % band (Säilynoja et al. 2022):
        a quantity whose curve leaves the band is rejected at 5 %. Returns (fig, axes)."""
        import matplotlib.pyplot as plt

        fig, axes, quantities = _grid(self.uniformity.index)
        L = self.ranked_draws
        for ax, q in zip(axes, quantities):
            r = self.ranks.loc[self.ranks["quantity"] == q, "rank"].to_numpy(int)
            u, lo, hi = ecdf_band(len(r), L, 1 - self.level)
            ecdf = np.cumsum(np.bincount(r, minlength=L + 1))[:L] / len(r)
            ax.fill_between(u, lo, hi, step="post", color="0.85")
            ax.step(u, ecdf - u, where="post", color="C3" if self.uniformity.loc[q, "rejected"] else "C0", lw=1)
            ax.axhline(0, color="0.5", lw=0.6)
            self._title(ax, q)
        for ax in axes[len(quantities):]:
            ax.set_visible(False)
        fig.suptitle(f"SBC ECDF difference: {self.family}{' ' + self.hypothesis if self.hypothesis else ''} "
                     f"(grey: simultaneous {1 - self.level:.0%} band of uniform ranks)", fontsize=9)
        fig.supxlabel("fractional rank of the truth (0–1)", fontsize=8)
        fig.supylabel("ECDF of the ranks − uniform CDF", fontsize=8)
        plt.tight_layout(rect=(0, 0, 1, 0.97))
        return fig, axes

    def _title(self, ax, q):
        p = self.uniformity.loc[q, "p_ecdf"]
        ax.set_title(f"{q}\np = {p:.2g}", fontsize=7, color="C3" if self.uniformity.loc[q, "rejected"] else "k")
        ax.tick_params(labelsize=6)

    def write(self, out_dir: str | Path) -> list[Path]:
        """ranks.csv, uniformity.csv, replicates.csv, rank_histograms.png and ecdf_difference.png in `out_dir`
        (each written atomically, replacing the previous ones). Returns the paths."""
        import matplotlib.pyplot as plt

        from .provenance import atomic_write

        out_dir = Path(out_dir)
        paths = []
        for name, table, index in (("ranks.csv", self.ranks, False), ("uniformity.csv", self.uniformity, True),
                                   ("replicates.csv", self.replicates, False)):
            paths.append(atomic_write(out_dir / name, lambda tmp, t=table, i=index: t.to_csv(tmp, index=i,
                                                                                           float_format="%.6g"),
                                      force=True, what="SBC table"))
        for name, make in (("rank_histograms.png", self.plot_histograms), ("ecdf_difference.png", self.plot_ecdf)):
            if self.uniformity.empty:
                continue
            fig, _ = make()
            paths.append(atomic_write(out_dir / name, lambda tmp, f=fig: f.savefig(tmp, dpi=110, format="png"),
                                      force=True, what="SBC plot"))
            plt.close(fig)
        return paths

    def __str__(self) -> str:
        head = (f"SBC of {self.family}{' ' + self.hypothesis if self.hypothesis else ''}: {len(self.replicates)} "
                f"replicates, {self.pass_rate:.0%} passed diagnostics; uniformity rejected at {self.level:g} for "
                f"{len(self.rejected())} of {len(self.uniformity)} quantities")
        return head + "\n" + self.uniformity.to_string(float_format=lambda x: f"{x:.3g}")


def _grid(quantities):
    import matplotlib.pyplot as plt

    quantities = list(quantities)
    ncols = min(5, max(1, len(quantities)))
    nrows = max(1, math.ceil(len(quantities) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 1.9 * nrows), squeeze=False)
    return fig, list(axes.ravel()), quantities


def summarise(table: pd.DataFrame, L: int = RANKED_DRAWS, level: float = LEVEL) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ranks, uniformity) from the sweep's table (one row per replicate with ``rank:<quantity>`` columns)."""
    quantities = [c[len(_RANK):] for c in table.columns if c.startswith(_RANK)]
    rows = []
    for q in quantities:
        t = table[table[_RANK + q].notna()]
        rows.append(pd.DataFrame({"replicate": t["replicate"].astype(int), "quantity": q,
                                  "truth": t[_TRUTH + q].astype(float), "rank": t[_RANK + q].astype(int),
                                  "passed": t["passed"].astype(bool)}))
    ranks = (pd.concat(rows, ignore_index=True) if rows else
             pd.DataFrame(columns=["replicate", "quantity", "truth", "rank", "passed"]))
    uni = []
    for q in quantities:
        r = ranks[ranks["quantity"] == q]
        test = uniformity_test(r["rank"].to_numpy(), L)
        passed = uniformity_test(r.loc[r["passed"], "rank"].to_numpy(), L)
        uni.append({"quantity": q, "replicates": test["n"], "p_ecdf": test["p_ecdf"], "p_chi2": test["p_chi2"],
                    "p_ecdf_passed_fits": passed["p_ecdf"]})
    uniformity = pd.DataFrame(uni, columns=["quantity", "replicates", "p_ecdf", "p_chi2", "p_ecdf_passed_fits"])
    uniformity = uniformity.set_index("quantity")
    uniformity["rejected"] = uniformity["p_ecdf"] < level
    uniformity["rejected_bonferroni"] = uniformity["p_ecdf"] < level / max(1, len(uniformity))
    return ranks, uniformity


def sbc(family, design, *, replicates: int, settings: SamplerSettings | None = None, seed: int = 0,
        out_dir: str | Path, scheduler: str | None = None, workers: int | None = None, priors: Any = None,
        hypothesis: str | None = None, ranked_draws: int = RANKED_DRAWS, thresholds: Mapping | None = None,
        write: bool = True) -> SBCResult:
    """Simulation-based calibration of `family` (a name or `Family`) on `design` (TOML path, parsed table or the
    family's design object): `replicates` truths drawn from the prior, simulated, fitted and ranked.

    settings: sampler settings of each fit (default `DEFAULT_SETTINGS`: 2 chains × 500 draws); seed: fixes every
    truth, data set and fit (replicate r uses `replicate_seeds(seed, r)`); out_dir: the sweep's folder (one JSON per
    finished replicate: a re-run with the same arguments skips them, and asking for more replicates adds only the
    new ones) and, with `write`, the tables and plots (`SBCResult.write`); scheduler, workers: `run_sweep`'s
    (None: a local Dask cluster; "serial": this process); priors: overrides of the family's prior table, used
    both to draw the truths and to fit; hypothesis: the family's hypothesis to simulate and fit (default its own);
    ranked_draws: L; thresholds: `diagnose`'s (default `SBC_THRESHOLDS`).
    """
    family = families.get(family)
    if family.simulate is None or family.draw_truth is None:
        raise SBCError(f"the {family.label} model has no simulator, so it cannot be calibrated by simulation")
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 1:
        raise SBCError(f"replicates must be a positive integer, got {replicates!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SBCError(f"seed must be an integer >= 0, got {seed!r}")
    settings = settings or DEFAULT_SETTINGS
    if settings.chains * settings.draws < ranked_draws:
        raise SBCError(f"SBC ranks among {ranked_draws} thinned draws; {settings.chains} chains × {settings.draws} "
                       f"draws are too few")
    hypothesis = family.check_hypothesis(hypothesis)
    thresholds = dict(SBC_THRESHOLDS if thresholds is None else thresholds)
    pr = family.resolve_priors(priors)
    design = family.read_design(design)
    payload = {"family": family.name, "design": design, "priors": pr, "hypothesis": hypothesis,
               "settings": settings.to_dict(), "seed": int(seed), "ranked_draws": int(ranked_draws),
               "thresholds": thresholds}
    manifest = {"kind": "sbc", "family": family.name, "hypothesis": hypothesis, "seed": int(seed),
                "design": _plain(design.to_dict() if hasattr(design, "to_dict") else repr(design)),
                "priors": {k: p.to_dict() for k, p in pr.items()}, "settings": settings.to_dict(),
                "ranked_draws": int(ranked_draws), "thresholds": thresholds}
    tasks = [Task(key=f"r{r:05d}", payload={**payload, "replicate": r}) for r in range(replicates)]
    log.info("SBC of the %s model%s: %d replicates in %s", family.label, f" under {hypothesis}" if hypothesis else "",
             replicates, out_dir)
    table = run_sweep(sbc_replicate, tasks, Path(out_dir), manifest=manifest, scheduler=scheduler, workers=workers,
                     progress=True)
    ranks, uniformity = summarise(table, ranked_draws)
    result = SBCResult(family=family.name, hypothesis=hypothesis, ranks=ranks, uniformity=uniformity,
                       replicates=table, ranked_draws=ranked_draws, settings=settings.to_dict())
    if write:
        result.write(out_dir)
    log.info("%d of %d replicates passed their diagnostics; uniformity rejected at %g for: %s",
             int(table["passed"].sum()), len(table), LEVEL, ", ".join(result.rejected()) or "none")
    return result


def _plain(x):
    """A JSON-able copy of a design's dict (tuples as lists, numbers as floats)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x

"""The Treg family's one prior table (docs/science.md §4.2), each prior with its unit, meaning and source.

The pathway weights ``w`` are Dirichlet(alpha, …, alpha) over `mscbayes.mechanisms.treg.PATHWAYS`; override
with ``{"w": {"alpha": 2.0}}`` like any other prior.
"""

from __future__ import annotations

from mscbayes.mechanisms.treg import PATHWAYS
from mscbayes.priors import Prior

__all__ = ["PRIORS", "SIZES"]

_IVANOVA = "Ivanova-Todorova 2012, J Biomed Biotechnol 2012:295167 (doi:10.1155/2012/295167), Table 1 [V]"

PRIORS: dict[str, Prior] = {
    p.name: p
    for p in [
        Prior("emax", "halfnormal", {"sigma": 1.0}, "logit",
              "largest shift of logit Treg fraction at full drive (D = 1), per readout",
              f"docs/science.md §4.2: E_max ~ Normal⁺(0, 1) on the logit scale, anchored on the 1.1–2.8× "
              f"fold change with AT-MSC conditioned medium ({_IVANOVA}) ≈ logit shift 0.1–1"),
        Prior("mu_alpha", "normal", {"mu": -3.6, "sigma": 0.6}, "logit",
              "population mean of the donor baseline logit Treg fraction, per readout",
              f"docs/science.md §4.2: donor baseline logit of 1–6 % (controls 0.7–5.8 % in {_IVANOVA}); "
              "logit(2.7 %) = −3.6, ±2 SD ≈ 0.8–8 %"),
        Prior("sigma_alpha", "halfnormal", {"sigma": 0.5}, "logit",
              "between-donor SD of the baseline logit, per readout",
              "[D] donors spanning 1–6 % is a logit range of ≈ 1.8, i.e. an SD ≈ 0.5"),
        Prior("eta", "beta", {"alpha": 8.0, "beta": 2.0}, "fraction",
              "blocking efficiency of each blocker (fraction of its pathway removed)",
              "docs/science.md §4.2: η_b ~ Beta(8, 2)"),
        Prior("r50", "lognormal", {"median": 0.05, "sigma": 1.0}, "MSC per responder cell",
              "MSC ratio giving half of a pathway's maximal activity",
              "[D] middle of the 1:100–1:5 MSC:PBMC design range of docs/science.md §4.2; ±2 SD ≈ 1:150–1:3"),
        Prior("ido_unlicensed", "beta", {"alpha": 2.0, "beta": 6.0}, "fraction",
              "IDO activity of MSC without IFN-γ licensing, relative to licensed",
              "[D] IDO needs IFN-γ licensing (docs/science.md §4.1: Meisel 2004, Krampera 2006, Ren 2008 [M])"),
        Prior("cm_equiv_ratio", "lognormal", {"median": 0.05, "sigma": 1.5}, "MSC per responder cell",
              "MSC-equivalent ratio of conditioned medium (secretome only), per study",
              "[D] unknown and wide: conditioned medium is rarely dosed in cell equivalents"),
        Prior("sigma", "halfnormal", {"sigma": 0.5}, "logit",
              "residual SD of logit % FoxP3⁺ between wells (percent readouts), per readout",
              "[D] well-to-well CV of 10–40 % for a 1–10 % fraction ≈ logit SD 0.1–0.4"),
        Prior("phi", "lognormal", {"median": 1000.0, "sigma": 1.5}, "events",
              "beta-binomial concentration of FoxP3⁺ event counts (overdispersion between wells)",
              "[D] a relative SD of ≈ 15 % at 3 % FoxP3⁺ corresponds to φ ≈ 1500"),
    ]
}
#: Dirichlet concentration of the pathway weights (override with ``{"w": {"alpha": 2.0}}``).
PRIORS["w"] = Prior("w", "dirichlet", {"alpha": 1.0}, "simplex", "weights of the pathways in the drive D",
                    "[D] Dirichlet(1, …, 1): flat on the simplex of pathway weights")

#: Number of components of the Dirichlet priors (for their marginal intervals in the prior table).
SIZES = {"w": len(PATHWAYS)}

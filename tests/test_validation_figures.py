"""The figures of the model and design checks (SBC, confusion matrix, design trade-off) are readable: every axis
that shows values is labelled, no tick labels overlap, no title is cut (`plots.figure_problems`, the rule the
report's figures follow)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mscbayes.calibration import SBCResult, summarise  # noqa: E402
from mscbayes.design_rank import DesignRanking, rank_table  # noqa: E402
from mscbayes.plots import figure_problems  # noqa: E402
from mscbayes.recovery import confusion_of  # noqa: E402


def test_sbc_rank_histograms_and_ecdf_differences_are_readable():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"replicate": range(60), "passed": rng.random(60) < 0.8})
    for q in ("krel", "kphi", "log_d50_lung", "alpha_outcome[treg_pct_of_cd4]", "sigma_outcome[macrophage_il10_pct]",
              "w[il2]", "eta[anti_ccl18]"):
        table["rank:" + q] = rng.integers(0, 100, 60)
        table["truth:" + q] = rng.normal(size=60)
    ranks, uniformity = summarise(table, 99)
    result = SBCResult(family="mechanisms", hypothesis="H1", ranks=ranks, uniformity=uniformity, replicates=table)
    for make in (result.plot_histograms, result.plot_ecdf):
        fig, _ = make()
        assert figure_problems(fig) == [], make.__name__
        plt.close(fig)


def test_confusion_heatmap_and_design_tradeoff_are_readable():
    gens = ["H0", "H1", "H2", "H3", "H4"]
    rng = np.random.default_rng(1)
    rec = pd.DataFrame([{"generating": g, "best": str(rng.choice(gens)), "separated": bool(rng.random() < 0.3),
                         "gate_failed": bool(rng.random() < 0.2)} for g in gens for _ in range(4)])
    fig, _ = confusion_of(rec, gens).plot(title="recovery_discriminating.toml: win rates")
    assert figure_problems(fig) == []
    plt.close(fig)
    rows = []
    for d, animals in (("live vs heat-inactivated", 36), ("live only", 18), ("clodronate arm", 24),
                       ("conditioned medium", 30), ("local injection", 24), ("vehicle only", 12)):
        for g in ("H1", "H2", "H4"):
            best = g if rng.random() < 0.6 else "H1"
            rows.append({"design": d, "generating": g, "best": best, "separated": bool(rng.random() < 0.5),
                         "gate_failed": False, "animals": animals, "fit_seconds": 9.0,
                         "bma_H1": 0.4, "bma_H2": 0.3, "bma_H4": 0.3})
    replicates = pd.DataFrame(rows)
    ranking = DesignRanking(table=rank_table(replicates, ["H1", "H2", "H4"]), replicates=replicates,
                            hypotheses=("H1", "H2", "H4"))
    fig, _ = ranking.plot()
    assert figure_problems(fig) == []
    plt.close(fig)

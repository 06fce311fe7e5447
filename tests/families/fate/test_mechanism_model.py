"""Hypotheses H0–H4 as drivers of one shared effect compartment; the outcome table; the design hooks.

All numpy or graph-building only (no sampling).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mscbayes.data import DataValidationError, read_fate_table
from mscbayes.data.outcomes import read_invivo_table, read_outcome_table
from mscbayes.families.fate.mechanism_model import DRIVER_SCALE_PRIORS, build_mechanism_model, observation_groups
from mscbayes.mechanisms import effect, immune, trapping
from mscbayes.mechanisms import hypotheses as hyp
from mscbayes.mechanisms.fate import AnimalDesign, fate_states
from mscbayes.families.fate.simulate import Arm, Design, load_design, mechanism_truth, simulate, simulate_mechanisms

ROOT = Path(__file__).resolve().parents[3]
P = mechanism_truth()
SCALES = hyp.driver_scales(DRIVER_SCALE_PRIORS)


def arms(treatments, depletions=None, route=None):
    n = len(treatments)
    return hyp.ArmDesign(
        dose_cells=np.full(n, 1e6), viability=np.full(n, 0.95), diameter_mean_um=np.full(n, 20.0),
        diameter_sd_um=np.full(n, 4.0), route=np.array(route or ["intravenous"] * n),
        route_organ=np.array([""] * n), species=np.array(["mouse"] * n),
        switches=immune.arm_switches(treatments, depletions or ["none"] * n))


TIMES = np.array([0.5, 2.0, 8.0, 24.0, 72.0, 168.0])


def auc(u):
    return np.trapezoid(u, TIMES, axis=-1)


def test_driver_totals_equal_the_full_network():
    a = arms(["live", "heat_inactivated", "live", "apoptosis_resistant"], ["none", "none", "macrophage", "nk"])
    d = hyp.raw_drivers(a, P, TIMES)
    n, nt = a.n, len(TIMES)
    sw = immune.subset(a.switches, np.repeat(np.arange(n), nt))
    rep = lambda x: np.repeat(x, nt)  # noqa: E731
    design = AnimalDesign(time_h=np.tile(TIMES, n), dose_cells=rep(a.dose_cells), diameter_mean_um=rep(a.diameter_mean_um),
                          diameter_sd_um=rep(a.diameter_sd_um), route=rep(a.route), route_organ=rep(a.route_organ),
                          species=rep(a.species))
    p = dict(P, kphi=immune.engulfment_rate(P, sw))
    st = fate_states(design, p, kd=immune.death_rate(P, sw), viability=rep(a.viability) * (1 - sw.dead_at_infusion))
    live = sum(st[f"X_{o}"] for o in trapping.ORGANS) / hyp.DOSE_REF
    dead = sum(st[f"Y_{o}"] for o in trapping.ORGANS) / hyp.DOSE_REF
    np.testing.assert_allclose(d["H1"].ravel(), live, rtol=1e-10, atol=1e-15)
    reg = 1 - P["eta_clod"] * sw.macrophage_depleted
    np.testing.assert_allclose(d["H2"].ravel(), reg * p["kphi"] * dead, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(d["H4"].ravel(), st["X_target"] / hyp.DOSE_REF, rtol=1e-10, atol=1e-18)


def test_signature_predictions_of_the_design_matrix():
    """docs/science.md §6.3: the arms move each driver the way the design matrix says."""
    names = ["live", "heat_inactivated", "live", "microspheres", "conditioned_medium", "live",
             "apoptosis_resistant", "vehicle"]
    dep = ["none", "none", "macrophage", "none", "none", "nk", "none", "none"]
    d = hyp.raw_drivers(arms(names, dep), P, TIMES)
    a1, a2, a3 = auc(d["H1"]), auc(d["H2"]), auc(d["H3"])
    live, hi, clod, beads, cm, nkdep, apo, veh = range(8)
    assert a1[hi] == 0 and a2[hi] > 0.5 * a2[live]               # HI: H1 lost, H2 kept
    assert a1[clod] == pytest.approx(a1[live]) and a2[clod] < 0.2 * a2[live]  # clodronate abolishes H2
    assert a1[beads] == 0 and a2[beads] == 0 and a3[beads] == pytest.approx(a3[live])  # microspheres: H3 only
    assert a1[cm] > 0 and a2[cm] == 0 and a3[cm] == 0             # conditioned medium: partial H1 only
    assert a1[nkdep] > a1[live] and a1[apo] > a1[live]            # longer-lived cells: more secretome
    assert d["H2"][apo, 1] < d["H2"][live, 1]                     # and less early efferocytosis
    assert a1[veh] == a2[veh] == a3[veh] == 0
    # homing needs cells past the lung: IA delivery to the target raises H4 far above IV
    ia = hyp.raw_drivers(arms(["live", "live"], route=["intravenous", "intra_arterial"]).__class__(
        **{**arms(["live", "live"]).__dict__, "route": np.array(["intravenous", "intra_arterial"]),
           "route_organ": np.array(["", "target"])}), P, TIMES)
    assert auc(ia["H4"])[1] > 10 * auc(ia["H4"])[0]


def test_normalised_drivers_peak_near_one_at_prior_median():
    a = arms(["live"])
    for h in hyp.DRIVEN:
        u = hyp.normalised_drivers(a, P, effect.midpoints(effect.time_grid([168.0])), h, SCALES)
        assert 0.2 < u.max() < 5, (h, u.max())
    assert hyp.normalised_drivers(a, P, TIMES, "H0", SCALES) is None


@pytest.mark.parametrize("h", ["H1", "H2", "H3"])
def test_effect_grid_matches_a_stiff_ode_solve(h):
    a = arms(["live"])

    def u_fn(t):
        return hyp.normalised_drivers(a, P, np.array([t]), h, SCALES)[0, 0]

    nodes = effect.time_grid(TIMES)
    rows = np.searchsorted(nodes, TIMES)
    g = effect.saturate(np.array([u_fn(t) for t in effect.midpoints(nodes)]), P["u50"])
    r_grid = effect.effect_at(g, nodes, rows, P["k_out"], k_in=effect.K_IN)
    r_ode = effect.effect_ode(u_fn, P["u50"], effect.K_IN, P["k_out"], TIMES)
    assert np.max(np.abs(r_grid - r_ode)) < 2e-3 * max(1.0, r_ode.max())
    assert r_ode.max() > 0.05


def test_effect_kernel_limits():
    nodes = effect.time_grid([10.0, 100.0])
    g = np.ones(len(nodes) - 1)
    rows = np.searchsorted(nodes, [10.0, 100.0])
    r = effect.effect_at(g, nodes, rows, 0.05, k_in=0.05)
    np.testing.assert_allclose(r, 1 - np.exp(-0.05 * np.array([10.0, 100.0])), rtol=1e-12)  # constant input: exact


# ------------------------------------------------------------------------------------------ models


@pytest.fixture(scope="module")
def small_table():
    common = dict(route="intravenous", dose_cells=1e6, viability=0.95, times_h=(4.0, 24.0), organs=("lung",),
                  assays=("bli",), animals_per_time=1, outcome_times_h=(2.0, 24.0, 72.0),
                  readouts=("treg_pct_of_cd4", "cytokine_pg_ml"), outcome_animals_per_time=2)
    d = Design(study="s", arms=(Arm(name="live", **common), Arm(name="hi", treatment="heat_inactivated", **common)),
               hypothesis="H2")
    return read_invivo_table(simulate_mechanisms(d, seed=2))


def _signature(model):
    return sorted((rv.name, rv.ndim, tuple(model.named_vars_to_dims.get(rv.name, ()) or ())) for rv in model.free_RVs)


def test_every_hypothesis_has_the_same_parameters(small_table):
    sigs = {h: _signature(build_mechanism_model(small_table.frame, None, h)) for h in ("H0", "H1", "H2", "H3", "H4")}
    assert all(s == sigs["H0"] for s in sigs.values())
    mix = _signature(build_mechanism_model(small_table.frame, None, "H_mix"))
    assert {n for n, *_ in mix} - {n for n, *_ in sigs["H0"]} == {"mix_weights"}


def test_the_hypothesis_chooses_the_model_of_a_combined_table(small_table):
    from mscbayes import families

    mech = families.for_table("invivo", "H2")
    m = mech.build_model(small_table.frame, None, "H2")
    assert mech.name == "mechanisms" and m.mscbayes_hypothesis == "H2"
    assert "outcome" in [rv.name for rv in m.observed_RVs]
    assert families.for_table("invivo").name == "mechanisms"           # outcome rows: H0 by default
    assert families.for_table("fate").name == "fate"                    # fate rows alone: kinetics only
    kin = families.get("fate").build_model(small_table.frame)           # kinetics only, on the fate rows
    assert [rv.name for rv in kin.observed_RVs] == ["y"] and "kd" in kin.named_vars
    with pytest.raises(families.UnknownHypothesisError, match="H_mix"):
        families.for_table("invivo", "H9")


def test_observation_groups_follow_model_order(small_table):
    m = build_mechanism_model(small_table.frame, None, "H1")
    groups = observation_groups(small_table.frame)
    for rv in m.observed_RVs:
        v = m.rvs_to_values[rv]
        n = v.get_value().size if hasattr(v, "get_value") else np.asarray(v.data).size
        assert len(groups[rv.name]) == n
    assert set(groups["outcome"]) <= set(small_table.frame["study"] + "/" + small_table.frame["subject"])


# ------------------------------------------------------------------------------------------ tables and designs


def outcome_rows():
    base = dict(study="v", species="mouse", arm="live MSC", treatment="live", dose_cells=1e6, route="intravenous")
    return pd.DataFrame([
        dict(base, subject="a1", time_h=24, readout="treg_pct_of_cd4", value=9.5),
        dict(base, subject="a1", time_h=24, readout="cytokine_pg_ml", cytokine="IL-6", value=120.0),
        dict(base, subject="a2", time_h=72, readout="macrophage_il10_pct", value=20.0),
        dict(base, subject="a3", time_h=72, readout="disease_score", value=-1.5),
    ])


def test_outcome_table_reads_clean_rows():
    t = read_outcome_table(outcome_rows())
    assert t.kind == "outcome" and len(t) == 4 and (t.frame["depletion"] == "none").all()


def test_outcome_table_lists_every_problem():
    bad = outcome_rows()
    bad.loc[0, "value"] = 0.095 * 100 * 20          # 190 %: not a percentage
    bad.loc[1, "cytokine"] = None                   # cytokine row without its name
    bad.loc[2, "treatment"] = "heat-inactivated"    # alias accepted, but the arm's design now conflicts
    bad.loc[3, "readout"] = "il17_pct"              # unknown readout
    with pytest.raises(DataValidationError) as e:
        read_outcome_table(bad)
    text = str(e.value)
    assert "between 0 and 100" in text and "cytokine" in text and "same treatment" in text
    assert "readout" in text and len(e.value.problems) >= 4


def test_combined_table_pure_fate_is_unchanged_and_round_trips():
    fate = simulate(load_design(ROOT / "analyses" / "iv_biodistribution.toml"), seed=1)
    a, b = read_fate_table(fate), read_invivo_table(fate)
    assert b.kind == "fate" and a.sha256 == b.sha256
    d = load_design(ROOT / "analyses" / "discriminating_design.toml")
    assert d.hypothesis == "H2" and {a.treatment for a in d.arms} == {"live", "heat_inactivated"}
    assert {a.depletion for a in d.arms} == {"none", "macrophage"}
    table = simulate(d, seed=1)
    t = read_invivo_table(table)
    assert set(t.frame["part"]) == {"fate", "outcome"} and t.kind == "invivo"
    assert read_invivo_table(t.frame.copy()).sha256 == t.sha256     # re-validation is stable (Fit.load)
    o = t.frame[t.frame["part"] == "outcome"]
    assert sorted(o["time_h"].unique()) == [0, 2, 4, 8, 24, 72, 168]


def test_combined_table_reports_problems_of_every_part():
    common = dict(times_h=(4.0,), organs=("lung",), assays=("bli",), animals_per_time=1, outcome_times_h=(24.0,),
                  readouts=("treg_pct_of_cd4",), outcome_animals_per_time=1)
    tab = simulate_mechanisms(Design(study="s", arms=(Arm(name="live", **common),)), hypothesis="H1", seed=0)
    tab.loc[0, "organ"] = "xyzzy"
    tab.loc[tab["readout"] == "treg_pct_of_cd4", "value"] = 250.0
    with pytest.raises(DataValidationError) as e:
        read_invivo_table(tab)
    cols = {p.column for p in e.value.problems}
    assert {"organ", "value"} <= cols


def test_design_refuses_bad_arms():
    from mscbayes.families.fate.simulate import DesignError, design_from_dict

    doc = {"study": "x", "hypothesis": "H7", "arms": [
        {"name": "a", "treatment": "frozen", "depletion": "nk", "times_h": [1], "readouts": ["treg"]},
        {"name": "b", "treatment": "microspheres", "times_h": [1], "assays": ["bli"]}]}
    with pytest.raises(DesignError) as e:
        design_from_dict(doc)
    text = str(e.value)
    assert "hypothesis" in text and "frozen" in text and "readout" in text and "no cells to track" in text

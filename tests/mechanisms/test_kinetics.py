"""Exact fate kinetics: closed form vs matrix exponential vs a stiff ODE solver; mass balance; limits."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm as scipy_expm

from mscbayes.mechanisms import kinetics as kin
from mscbayes.mechanisms import trapping as tr
from mscbayes.mechanisms.assays import assay_signal
from mscbayes.families.fate.priors import KINETICS as DEFAULT_PRIORS

SIZE = dict(log_d50_lung=np.log(9.0), slope_lung=0.12, log_d50_systemic=np.log(13.0), slope_systemic=0.3)
RATES = dict(kd=0.1, krel=0.005, kphi=0.5, kfrag=0.02, kmig=0.05, kdig=0.02)
TIMES = np.array([0.0, 0.083, 0.5, 1, 4, 12, 24, 48, 72, 168, 336.0])  # 0–14 days


def setup(rates=RATES, route="intravenous", route_organ=None, viability=0.95, species="mouse", size=SIZE):
    br = tr.branches(species)
    E = tr.bed_extractions(20.0, 4.0, size)
    P = tr.allocation(route, E, br, route_organ=route_organ)
    Pa = tr.arterial_allocation(E, br)
    Pv = tr.venous_allocation(E, br)
    net = kin.fate_network(rates, Pa, Pv)
    x0 = kin.initial_state(1e6, viability, P)
    return net, x0


def radau(net, x0, times):
    A = kin.rate_matrix(net)
    x = np.array([x0.get(s, 0.0) for s in net.states])
    sol = solve_ivp(lambda t, y: A @ y, (0, times.max()), x, method="Radau", t_eval=times,
                    rtol=1e-12, atol=1e-12 * 1e6, jac=lambda t, y: A)
    assert sol.success
    return {s: sol.y[i] for i, s in enumerate(net.states)}


def rel_err(a, b, floor):
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), floor))


def prior_rate_draws(n, seed):
    rng = np.random.default_rng(seed)
    return [{k: float(DEFAULT_PRIORS[k].sample(rng)) for k in kin.RATE_NAMES} for _ in range(n)]


@pytest.mark.parametrize("route,route_organ", [("intravenous", None), ("intra_arterial", "systemic"),
                                               ("intra_arterial", "kidney"), ("portal_vein", None), ("local", "target")])
def test_closed_form_matches_radau_and_expm(route, route_organ):
    net, x0 = setup(route=route, route_organ=route_organ)
    cf = kin.solve_closed_form(net, x0, TIMES)
    ode = radau(net, x0, TIMES)
    ex = kin.solve_expm(net, x0, TIMES)
    for s in net.states:
        # relative 1e-6, with an absolute floor of 1e-6 of the dose for states that are ~0
        assert rel_err(cf[s], ode[s], 1.0) < 1e-6, s
        assert rel_err(ex[s], cf[s], 1e-6) < 1e-8, s


def test_closed_form_exact_over_the_whole_prior_range():
    """Prior draws, including extreme tails (fast death at 14 days), against scipy's expm."""
    worst = 0.0
    for rates in prior_rate_draws(150, seed=3):
        net, x0 = setup(rates=rates)
        cf = kin.solve_closed_form(net, x0, TIMES)
        A = kin.rate_matrix(net)
        x = np.array([x0.get(s, 0.0) for s in net.states])
        ref = np.stack([scipy_expm(A * t) @ x for t in TIMES], axis=1)
        for i, s in enumerate(net.states):
            assert np.all(np.isfinite(cf[s]))
            worst = max(worst, rel_err(cf[s], ref[i], 1.0))
    assert worst < 1e-6, worst


def test_coincident_rates_are_exact():
    # k_frag = 0 makes Y_lung and Y_sys share k_phi; k_mig = 0 makes Z_lung and Z_sys share k_dig; kd = kphi too
    rates = dict(kd=0.5, krel=0.0, kphi=0.5, kfrag=0.0, kmig=0.0, kdig=0.5)
    net, x0 = setup(rates=rates)
    cf = kin.solve_closed_form(net, x0, TIMES)
    ode = radau(net, x0, TIMES)
    for s in net.states:
        assert rel_err(cf[s], ode[s], 1.0) < 1e-6, s


def test_mass_balance_every_state_accounted():
    for rates in prior_rate_draws(20, seed=4):
        net, x0 = setup(rates=rates)
        cf = kin.solve_closed_form(net, x0, TIMES)
        total = sum(cf[s] for s in net.states)
        np.testing.assert_allclose(total, 1e6, rtol=1e-9)


def test_all_cells_stay_in_the_lung_when_extraction_is_one():
    size = dict(SIZE, log_d50_lung=np.log(1e-3))  # every cell trapped on the first lung pass
    net, x0 = setup(rates=dict(RATES, krel=0.0), size=size)
    cf = kin.solve_closed_form(net, x0, np.array([1.0, 24.0]))
    lung = cf["X_lung"] + cf["Y_lung"] + cf["Z_lung"] + cf["D_lung"]
    elsewhere = sum(cf[f"X_{o}"] for o in tr.SYSTEMIC)
    np.testing.assert_allclose(x0["X_lung"] + x0["Y_lung"], 1e6, rtol=1e-9)
    assert np.all(elsewhere == 0.0)
    assert np.all(lung + cf["Y_liver"] + cf["Z_liver"] + cf["D_liver"] + cf["Y_spleen"] + cf["Z_spleen"]
                  + cf["D_spleen"] == pytest.approx(1e6, rel=1e-9))


def test_dead_cells_accumulate_without_engulfment():
    rates = dict(RATES, kphi=0.0, kfrag=0.0)
    net, x0 = setup(rates=rates, viability=1.0)
    cf = kin.solve_closed_form(net, x0, TIMES)
    dead = sum(cf[f"Y_{o}"] for o in tr.ORGANS)
    live = sum(cf[f"X_{o}"] for o in tr.ORGANS)
    np.testing.assert_allclose(dead + live, 1e6, rtol=1e-9)
    assert np.all(np.diff(dead) > 0)
    assert sum(cf[f"Z_{o}"][-1] for o in tr.ORGANS) == 0.0


def test_live_only_assay_flat_without_death_or_release():
    net, x0 = setup(rates=dict(RATES, kd=0.0, krel=0.0))
    cf = kin.solve_closed_form(net, x0, TIMES)
    bli = assay_signal(cf, "bli", "lung")
    np.testing.assert_allclose(bli, bli[0], rtol=1e-12)


def test_recirculation_expm_matches_radau():
    rates = dict(RATES, krel_systemic=0.01)
    net, x0 = setup(rates=rates)
    with pytest.raises(ValueError, match="cycle"):
        kin.solve_closed_form(net, x0, TIMES)
    ex = kin.solve_expm(net, x0, TIMES)
    ode = radau(net, x0, TIMES)
    for s in net.states:
        assert rel_err(ex[s], ode[s], 1.0) < 1e-6, s


def test_expm_products_against_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        M = rng.standard_normal((6, 6)) * 30
        s = kin.squarings_for(30 * 6, 1.0)
        np.testing.assert_allclose(kin.expm_products(M, s), scipy_expm(M), rtol=1e-8, atol=1e-8 * np.abs(scipy_expm(M)).max())


@pytest.mark.parametrize("route,route_organ,kd", [("intravenous", "", 0.1), ("intravenous", "", 2e-3),
                                                  ("intra_arterial", "systemic", 0.05), ("portal_vein", "", 0.1)])
def test_fraction_ever_alive_in_target_matches_the_integrated_inflow(route, route_organ, kd):
    """Closed form of 'fraction of the dose that ever reaches the injured tissue alive' against the
    live-cell inflow into X_target integrated by Radau from the rate matrix (plus what is trapped there at t=0)."""
    from mscbayes.mechanisms.fate import AnimalDesign, fate_states, fraction_ever_alive_in

    design = AnimalDesign(time_h=np.array([0.0]), dose_cells=np.array([1.0]), diameter_mean_um=np.array([20.0]),
                          diameter_sd_um=np.array([4.0]), route=np.array([route]), route_organ=np.array([route_organ]),
                          species=np.array(["mouse"]))
    params = dict(SIZE, **{k: v for k, v in RATES.items() if k != "kd"})
    got = fraction_ever_alive_in(design, params, kd=kd, viability=0.9)
    # independent: the network's own rate matrix, an accumulator of the inflow into X_target
    x0 = fate_states(design, params, kd=kd, viability=0.9)
    br = tr.branches("mouse")
    E = tr.bed_extractions(20.0, 4.0, params)
    net = kin.fate_network(dict(RATES, kd=kd), tr.arterial_allocation(E, br))
    A = kin.rate_matrix(net)
    i = net.states.index("X_target")
    inflow = np.array([A[i, j] if (j != i and s.startswith("X_")) else 0.0 for j, s in enumerate(net.states)])
    y0 = np.array([float(np.asarray(x0.get(s, 0.0)).ravel()[0]) for s in net.states] + [0.0])
    sol = solve_ivp(lambda t, y: np.concatenate([A @ y[:-1], [inflow @ y[:-1]]]), (0, 40.0 / kd), y0,
                    method="Radau", rtol=1e-11, atol=1e-14)
    expected = y0[i] + sol.y[-1, -1]
    assert got.shape == (1,)
    assert abs(got[0] - expected) < 1e-7 * max(expected, 1e-6), (got, expected)
    assert 0.0 < got[0] < 0.9


@pytest.mark.parametrize("requests,reads_d_total", [
    ([("cr51", "lung"), ("cr51", "liver"), ("bli", "liver")], False),   # Cr-51 free label is re-taken up by the kidney only
    ([("cr51", "kidney"), ("dna_qpcr", "lung")], True),
    ([("in111", "liver")], True),                                       # 111In free label goes to the liver
    ([("cr51", "whole_body")], True),
    ([("flow_dead", "lung"), ("flow_engulfed", "liver")], False),
])
def test_signals_from_the_states_an_assay_needs_equal_the_full_solution(requests, reads_d_total):
    from mscbayes.mechanisms.assays import states_needed
    from mscbayes.mechanisms.fate import AnimalDesign, expected_signals, fate_states

    needed = states_needed({a for a, _ in requests}, {o for _, o in requests})
    assert ("D_total" in needed) == reads_d_total
    n = len(TIMES)
    design = AnimalDesign(time_h=TIMES, dose_cells=np.full(n, 1e6), diameter_mean_um=np.full(n, 20.0),
                          diameter_sd_um=np.full(n, 4.0), route=np.array(["intravenous"] * n),
                          route_organ=np.array([""] * n), species=np.array(["mouse"] * n))
    params = dict(SIZE, **{k: v for k, v in RATES.items() if k != "kd"})
    got = expected_signals(design, params, requests, kd=RATES["kd"], viability=0.9)
    every = fate_states(design, params, kd=RATES["kd"], viability=0.9, wanted=kin.STATES + ("D_total",))
    for a, o in requests:
        np.testing.assert_allclose(got[(a, o)], assay_signal(every, a, o), rtol=1e-12, atol=1e-9, err_msg=f"{a} {o}")


def test_flow_readouts_split_cell_material_into_live_dead_and_engulfed():
    """DNA qPCR sees live + dead + engulfed material; BLI, flow_dead and flow_engulfed see one part each."""
    net, x0 = setup()
    st = kin.solve_closed_form(net, x0, TIMES)
    for organ in ("lung", "liver", "spleen"):
        parts = sum(assay_signal(st, a, organ) for a in ("bli", "flow_dead", "flow_engulfed"))
        np.testing.assert_allclose(parts, assay_signal(st, "dna_qpcr", organ), rtol=1e-12)
        np.testing.assert_allclose(assay_signal(st, "flow_dead", organ), st[f"Y_{organ}"])
        np.testing.assert_allclose(assay_signal(st, "flow_engulfed", organ), st[f"Z_{organ}"])

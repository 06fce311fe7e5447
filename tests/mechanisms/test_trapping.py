"""Capillary trapping and first-pass allocation."""

import numpy as np
import pytest

from mscbayes.mechanisms import trapping as tr

SIZE = dict(log_d50_lung=np.log(9.0), slope_lung=0.12, log_d50_systemic=np.log(13.0), slope_systemic=0.3)


def extractions(**kw):
    return tr.bed_extractions(kw.pop("mean", 20.0), kw.pop("sd", 4.0), dict(SIZE, **kw))


@pytest.mark.parametrize("species", ["mouse", "rat", "human", "pig"])
@pytest.mark.parametrize("route,organ", [("intravenous", None), ("intra_arterial", "systemic"), ("intra_arterial", "kidney"),
                                         ("intra_arterial", "spleen"), ("intra_arterial", "target"), ("intra_arterial", "rest"),
                                         ("intra_arterial", "liver"), ("portal_vein", None), ("local", "target"), ("local", "lung")])
def test_allocations_sum_to_one(species, route, organ):
    rng = np.random.default_rng(0)
    for _ in range(20):
        E = {o: float(rng.uniform(0.01, 0.999)) for o in tr.ORGANS}
        P = tr.allocation(route, E, tr.branches(species), route_organ=organ, local_leak=float(rng.uniform()))
        assert sum(P.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(v >= 0 for v in P.values())


def test_iv_dose_is_mostly_in_the_lung():
    P = tr.allocation("intravenous", extractions(), tr.branches("mouse"))
    assert 0.98 < P["lung"] < 1.0  # "about 99 % of an IV dose in the lung at 5 min" (docs/science.md §7.3)


def test_intra_arterial_traps_in_the_first_bed_downstream():
    E = extractions()
    P = tr.allocation("intra_arterial", E, tr.branches("mouse"), route_organ="kidney")
    assert P["kidney"] == pytest.approx(E["kidney"] + (1 - E["kidney"]) * tr.venous_allocation(E, tr.branches("mouse"))["kidney"])
    assert P["kidney"] > 0.5 and P["lung"] < 0.5


def test_markov_chain_monte_carlo_agrees_with_closed_allocation():
    """Simulate single cells pass by pass through veins, lung, arterial branches (docs/science.md §1.5a)."""
    rng = np.random.default_rng(1)
    E = {"lung": 0.6, "liver": 0.5, "spleen": 0.4, "kidney": 0.3, "target": 0.7, "rest": 0.2}
    br = tr.branches("mouse", 0.05)
    flows = np.array([b.flow_fraction for b in br])
    counts = dict.fromkeys(tr.ORGANS, 0)
    n = 40000
    for _ in range(n):
        while True:
            if rng.random() < E["lung"]:
                counts["lung"] += 1
                break
            b = br[rng.choice(len(br), p=flows / flows.sum())]
            trapped = None
            for bed in b.beds:
                if rng.random() < E[bed]:
                    trapped = bed
                    break
            if trapped:
                counts[trapped] += 1
                break
    P = tr.venous_allocation(E, br)
    for o in tr.ORGANS:
        assert counts[o] / n == pytest.approx(P[o], abs=4 * np.sqrt(P[o] * (1 - P[o]) / n) + 1e-4)


def test_extraction_rises_with_cell_size_and_small_cells_pass():
    e_small = extractions(mean=8.0, sd=1.0)["lung"]
    e_msc = extractions(mean=20.0)["lung"]
    e_big = extractions(mean=30.0)["lung"]
    assert e_small < 0.5 < e_msc < e_big
    # bone-marrow mononuclear-sized cells pass the lung far more often than MSC (Fischer 2009: ~30x)
    assert (1 - e_small) / (1 - e_msc) > 10


def test_extraction_quadrature_matches_numerical_integral():
    from scipy import integrate, stats

    mu, sigma = tr.lognormal_size(20.0, 4.0)
    f = lambda d: stats.lognorm(s=sigma, scale=np.exp(mu)).pdf(d) / (1 + np.exp(-(np.log(d) - np.log(13.0)) / 0.3))
    ref, _ = integrate.quad(f, 0.1, 200, limit=200)
    assert tr.extraction(20.0, 4.0, np.log(13.0), 0.3) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("d50, slope", [(9.0, 0.12), (9.0, 0.08), (8.0, 0.15)])
def test_escape_logit_is_minus_the_log_escape_of_the_reference_product(d50, slope):
    """The sampling coordinate of the lung curve: its inverse is exact, and for a saturated bed (> 99 % trapped)
    it is within 0.15 of −ln(1 − E) of a 20 ± 4 µm product (what first-pass data measure)."""
    ell = tr.escape_logit(np.log(d50), slope)
    assert tr.escape_logit_offset(slope) - slope * ell == pytest.approx(np.log(d50), abs=1e-12)
    e = tr.extraction(20.0, 4.0, np.log(d50), slope)
    assert e > 0.99
    assert ell == pytest.approx(-np.log1p(-e), abs=0.15)


def test_unknown_route_and_organ_are_refused():
    E = extractions()
    with pytest.raises(ValueError, match="unknown route"):
        tr.allocation("intranasal", E, tr.branches("mouse"))
    with pytest.raises(ValueError, match="route_organ"):
        tr.allocation("intra_arterial", E, tr.branches("mouse"), route_organ="brain")


def test_systemic_extraction_is_computed_once_per_product_and_matches_per_animal_values():
    """Animals of the same product share one systemic quadrature; the values (numpy and pytensor) are the
    per-animal ones, and the pytensor graph holds one sigmoid row per product, not per animal."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.traversal import io_toposort

    from mscbayes.mechanisms.backend import pytensor_backend

    rng = np.random.default_rng(3)
    mean = rng.choice([16.0, 20.0, 25.0], 40)
    sd = rng.choice([3.0, 4.0], 40)
    params = {"log_d50_lung": np.log(15.0), "slope_lung": 0.1, "log_d50_systemic": np.log(9.0), "slope_systemic": 0.2}
    expected = tr.extraction(mean, sd, params["log_d50_systemic"], params["slope_systemic"])
    offset = rng.normal(0.0, 0.5, 40)
    E = tr.bed_extractions(mean, sd, params, offset)
    np.testing.assert_allclose(E["liver"], expected, rtol=1e-14)
    assert E["spleen"] is E["liver"]
    np.testing.assert_allclose(E["lung"], tr.extraction(mean, sd, params["log_d50_lung"], 0.1, offset), rtol=1e-14)

    d50, slope = pt.scalar("d50"), pt.scalar("slope")
    sym = dict(params, log_d50_systemic=d50, slope_systemic=slope)
    E_pt = tr.bed_extractions(mean, sd, sym, offset, pytensor_backend())
    f = pytensor.function([d50, slope], E_pt["kidney"])
    np.testing.assert_allclose(f(np.log(9.0), 0.2), expected, rtol=1e-12)
    n_products = len({(m, s) for m, s in zip(mean, sd)})
    sigmoid_sizes = [np.prod(v.type.shape) for node in io_toposort([d50, slope], [E_pt["kidney"]])
                     for v in node.outputs if "sigmoid" in str(node.op).lower()]
    assert sigmoid_sizes and max(sigmoid_sizes) == n_products * len(tr._GH_NODES)
    # per-animal systemic parameters (e.g. one value per draw) keep the per-animal evaluation
    per_draw = dict(params, log_d50_systemic=np.log([[9.0], [10.0]]))
    np.testing.assert_allclose(tr.bed_extractions(mean, sd, per_draw)["liver"],
                               tr.extraction(mean, sd, per_draw["log_d50_systemic"], 0.2), rtol=1e-14)

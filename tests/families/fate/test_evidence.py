"""Evidence-synthesis likelihoods (issue 4): each kind against scipy, the row → model-quantity mapping,
the bundled selection, and the consistency of summaries with the individual data they came from."""

from __future__ import annotations

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from mscbayes.families.fate import evidence as ev
from mscbayes.families.fate import evidence_rows
from mscbayes.families.fate.priors import EVIDENCE
from mscbayes.data.fate import read_fate_table
from mscbayes.mechanisms import trapping
from mscbayes.mechanisms.fate import AnimalDesign, expected_signals
from mscbayes.families.fate.simulate import Arm, Design, simulate

FAST = "FAST_COMPILE"
#: The censored and binomial terms use PyMC's normal_lcdf, which is accurate to about 1e-7 (absolute) near its
#: branch at z = −1; the formulas are checked against scipy to that precision.
LCDF_ABS = 2e-7


def _eval(x):
    return pytensor.function([], x, mode=FAST)()


# ------------------------------------------------------------------------------------ likelihoods vs scipy

M, SIGMA = math.log(0.3), 0.4   # model quantity q = 0.3, between-subject log-SD 0.4


def test_mean_with_sd_lognormal_matches_scipy():
    value, sd, n = 0.33, 0.12, 5
    cv2 = (sd / value) ** 2
    s_w2, s_n2 = math.log1p(cv2), math.log1p(cv2 / n)
    # ȳ moment-matched log-normal: median q·exp(s_w²/2 − s_n²/2), log-SD s_n
    want = stats.lognorm(s=math.sqrt(s_n2), scale=0.3 * math.exp(0.5 * s_w2 - 0.5 * s_n2)).logpdf(value)
    assert _eval(ev.mean_logp(M, value, sd, n)) == pytest.approx(want, rel=1e-10)
    # the moment match: E[ȳ] = E[Y] = q·exp(s_w²/2) and Var[ȳ] = Var[Y]/n, checked by simulation
    rng = np.random.default_rng(1)
    sig_w = math.sqrt(s_w2)
    means = np.exp(M + sig_w * rng.standard_normal((200_000, n))).mean(axis=1)
    approx = stats.lognorm(s=math.sqrt(s_n2), scale=0.3 * math.exp(0.5 * s_w2 - 0.5 * s_n2))
    assert means.mean() == pytest.approx(approx.mean(), rel=5e-3)
    assert means.std() == pytest.approx(approx.std(), rel=2e-2)


def test_mean_with_sigma_parameter_and_normal_scale_match_scipy():
    value, n = 0.28, 4
    cv2 = math.expm1(SIGMA**2)
    s_w2, s_n2 = math.log1p(cv2), math.log1p(cv2 / n)
    want = stats.lognorm(s=math.sqrt(s_n2), scale=0.3 * math.exp(0.5 * s_w2 - 0.5 * s_n2)).logpdf(value)
    assert _eval(ev.mean_logp(M, value, None, n, sigma=SIGMA)) == pytest.approx(want, rel=1e-10)
    # normal on the group mean: ȳ ~ N(q, SD/√n)
    want = stats.norm(0.3, 0.07 / math.sqrt(6)).logpdf(0.32)
    assert _eval(ev.mean_logp(M, 0.32, 0.07, 6, scale="normal")) == pytest.approx(want, rel=1e-10)


def test_reported_sd_is_data_on_the_between_subject_sigma():
    sd, value, n = 0.12, 0.33, 5
    s2 = math.log1p((sd / value) ** 2)
    # (n − 1) s² / σ² ~ χ²(n − 1): density of s² = χ² density × (n − 1)/σ²
    want = stats.chi2(n - 1).logpdf((n - 1) * s2 / SIGMA**2) + math.log((n - 1) / SIGMA**2)
    assert _eval(ev.sd_logp(SIGMA, sd, value, n)) == pytest.approx(want, rel=1e-10)
    assert _eval(ev.sd_logp(SIGMA, sd, value, 1)) == 0.0


def test_range_every_subject_inside_matches_scipy():
    Y = stats.lognorm(s=SIGMA, scale=0.3)
    lo, hi, n = 0.27, 0.335, 4
    want = n * math.log(Y.cdf(hi) - Y.cdf(lo))
    assert _eval(ev.range_logp(M, SIGMA, lo, hi, n)) == pytest.approx(want, rel=1e-10, abs=LCDF_ABS)
    # truncated at 1 (fraction of the dose): conditional on Y < 1
    want_t = n * (math.log(Y.cdf(hi) - Y.cdf(lo)) - math.log(Y.cdf(1.0)))
    assert _eval(ev.range_logp(M, SIGMA, lo, hi, n, truncated=True)) == pytest.approx(want_t, rel=1e-10,
                                                                                   abs=LCDF_ABS)
    # far in the upper tail, where Φ(b) − Φ(a) underflows if done naively
    far = _eval(ev.range_logp(math.log(1e-6), 0.2, 0.5, 0.9, 1))
    assert np.isfinite(far) and far < -1000
    # a range starting at 0
    assert _eval(ev.range_logp(M, SIGMA, 0.0, 0.5, 2)) == pytest.approx(2 * Y.logcdf(0.5), rel=1e-10,
                                                                        abs=LCDF_ABS)


def test_bounds_are_censored_terms():
    Y = stats.lognorm(s=SIGMA, scale=0.3)
    assert _eval(ev.bound_logp(M, SIGMA, 0.5, 3, upper=True)) == pytest.approx(3 * Y.logcdf(0.5), rel=1e-10,
                                                                                abs=LCDF_ABS)
    assert _eval(ev.bound_logp(M, SIGMA, 0.2, 1, upper=False)) == pytest.approx(Y.logsf(0.2), rel=1e-10,
                                                                                 abs=LCDF_ABS)
    want = 2 * (math.log(Y.cdf(1.0) - Y.cdf(0.2)) - Y.logcdf(1.0))
    assert _eval(ev.bound_logp(M, SIGMA, 0.2, 2, upper=False, truncated=True)) == pytest.approx(want, rel=1e-10,
                                                                                                abs=LCDF_ABS)


def test_k_of_n_binomial_with_detection_probability():
    m_cells, lod = math.log(40.0), 10.0
    p = stats.norm.cdf((m_cells - math.log(lod)) / 0.7)
    for k, n in ((10, 10), (3, 10), (0, 4)):
        want = stats.binom(n, p).logpmf(k)
        assert _eval(ev.k_of_n_logp(m_cells, 0.7, math.log(lod), k, n)) == pytest.approx(want, rel=1e-10,
                                                                                         abs=LCDF_ABS)


def test_point_value_and_packed_likelihood_agree_with_the_kinds():
    want = stats.lognorm(s=0.35, scale=24.0).logpdf(20.0)
    assert _eval(ev.point_logp(math.log(24.0), 20.0, 0.35)) == pytest.approx(want, rel=1e-10)
    b = dict(study="s", species="mouse", organ="lung", assay="cr51", time_h=1.0, measure="cells")
    rows = ev.evidence_frame([dict(b, **r) for r in [
        dict(row_id="a", kind="mean", quantity="signal", spread_type="sd", spread=0.12, value=0.33, n=5,
             sd_mode="reported"),
        dict(row_id="b", kind="range", quantity="signal", value_min=0.27, value_max=0.335, n=4),
        dict(row_id="c", kind="upper_bound", quantity="signal", value_max=0.5, n=3),
        dict(row_id="d", kind="lower_bound", quantity="signal", value_min=0.2),
        dict(row_id="e", kind="point", quantity="half_life", value=20.0, assumed_log_sd=0.35),
        dict(row_id="f", kind="mean", quantity="signal", spread_type="sem", spread=0.03, value=0.33, n=5,
             sd_mode="reported"),
        dict(row_id="g", kind="mean", quantity="signal", spread_type="sd", spread=0.12, value=0.33, n=5),
    ]])
    pk = ev._pack(rows)
    m = np.array([M, M, M, M, math.log(24.0), M, M])
    sig = np.array([SIGMA, SIGMA, SIGMA, SIGMA, 0.35, SIGMA, SIGMA])
    got = _eval(ev.evidence_logp(pt.as_tensor(pk["observed"]), pt.as_tensor(m), pt.as_tensor(sig), pk["code"],
                                 pk["v"], pk["sd"], pk["lo"], pk["hi"], pk["n"], pk["k"], pk["log_lod"],
                                 pk["truncated"], pk["has_sd"]))
    Y = stats.lognorm(s=SIGMA, scale=0.3)
    cv2 = (0.12 / 0.33) ** 2
    sem_cv2 = (0.03 * math.sqrt(5) / 0.33) ** 2
    want = [
        stats.lognorm(s=math.sqrt(math.log1p(cv2 / 5)),
                      scale=0.3 * math.exp(0.5 * math.log1p(cv2) - 0.5 * math.log1p(cv2 / 5))).logpdf(0.33),
        4 * math.log(Y.cdf(0.335) - Y.cdf(0.27)),
        3 * Y.logcdf(0.5),
        Y.logsf(0.2),
        stats.lognorm(s=0.35, scale=24.0).logpdf(20.0),
        stats.lognorm(s=math.sqrt(math.log1p(sem_cv2 / 5)),
                      scale=0.3 * math.exp(0.5 * math.log1p(sem_cv2) - 0.5 * math.log1p(sem_cv2 / 5))).logpdf(0.33),
        _eval(ev.mean_logp(M, 0.33, None, 5, sigma=SIGMA)) + _eval(ev.sd_logp(SIGMA, 0.12, 0.33, 5)),
    ]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=LCDF_ABS)


# ------------------------------------------------------------------------------------ mapping onto the model

PARAMS = {"krel": 0.01, "kphi": 0.5, "kfrag": 0.02, "kmig": 0.03, "kdig": 0.02, "log_d50_lung": math.log(9.0),
          "slope_lung": 0.12, "log_d50_systemic": math.log(13.0), "slope_systemic": 0.3}


def _quantities(rows, point=None):
    """q per evidence row at the population values PARAMS, kd = 0.07, no study or species effect."""
    model = ev.build_evidence_model(rows)
    ip = model.initial_point()
    for k, v in PARAMS.items():
        key = f"{k}_log__" if f"{k}_log__" in ip else k
        if key == "log_d50_lung" and "lung_escape_logit" in ip:  # the lung curve's sampling coordinate
            key, v = "lung_escape_logit", trapping.escape_logit(v, PARAMS["slope_lung"])
        ip[key] = np.array(math.log(v) if key.endswith("_log__") else v)
    ip["log_kd"] = np.array(math.log(0.07))
    ip.update(point or {})
    out = model.replace_rvs_by_values([model["evidence_quantity"]])
    return model.compile_fn(out, inputs=model.value_vars, on_unused_input="ignore", mode=FAST)(ip)[0]


def test_row_quantities_match_the_numpy_mechanisms():
    base = dict(study="s", species="mouse", route="intravenous", dose_cells=1e6, viability=0.9)
    rows = [
        dict(base, row_id="sig", kind="point", quantity="signal", organ="liver", assay="cr51", time_h=24.0, value=0.1),
        dict(base, row_id="ratio", kind="point", quantity="ratio", organ="lung", assay="dna_qpcr", time_h=24.0,
             ref_time_h=1.0, value=0.5),
        dict(base, row_id="hl", kind="point", quantity="half_life", organ="lung", assay="bli", value=10.0),
        dict(base, row_id="ext", kind="point", quantity="extraction", organ="rest", value=0.9,
             diameter_mean_um=23.0, diameter_sd_um=4.6),
    ]
    q = _quantities(rows)
    p = dict(PARAMS)
    one = lambda t: AnimalDesign(time_h=np.array([t]), dose_cells=np.array([1e6]), diameter_mean_um=np.array([20.0]),
                                 diameter_sd_um=np.array([4.0]), route=np.array(["intravenous"]),
                                 route_organ=np.array([""]), species=np.array(["mouse"]))
    sig = lambda t, a, o: float(expected_signals(one(t), p, [(a, o)], kd=0.07, viability=0.9)[(a, o)][0]) + 1e-4
    assert q[0] == pytest.approx(sig(24.0, "cr51", "liver") / 1e6, rel=1e-6)
    assert q[1] == pytest.approx(sig(24.0, "dna_qpcr", "lung") / sig(1.0, "dna_qpcr", "lung"), rel=1e-6)
    # live cells in the lung decay as one exponential: half-life = ln 2 / (kd + krel (1 − P_a(lung)))
    E = trapping.bed_extractions(20.0, 4.0, p)
    pa_lung = trapping.arterial_allocation(E, trapping.branches("mouse"))["lung"]
    assert q[2] == pytest.approx(math.log(2) / (0.07 + 0.01 * (1 - pa_lung)), rel=1e-4)
    assert q[3] == pytest.approx(float(trapping.bed_extractions(23.0, 4.6, p)["rest"]), rel=1e-6)


def test_species_effect_and_calibration_enter_q():
    base = dict(study="s", route="intravenous", dose_cells=1e6, viability=0.9, kind="point", quantity="signal",
                organ="lung", assay="bli", time_h=24.0, value=0.1)
    rows = [dict(base, row_id="mouse", species="mouse"), dict(base, row_id="rat", species="rat"),
            dict(base, row_id="roi", species="mouse", assay="in111", calibrated=True, study="img")]
    model = ev.build_evidence_model(rows)
    assert list(model.coords["species"])[0] == "mouse"
    assert "log_calibration" in model.named_vars and list(model.coords["calibrated_study"]) == ["img"]
    q0 = _quantities(rows)
    q1 = _quantities(rows, {"z_kd_species": np.array([1.0, 0.0]), "z_calibration": np.array([1.0])})
    assert q1[0] == pytest.approx(q0[0])                       # mouse is the reference
    assert q1[1] < q0[1]                                       # faster death in rat → fewer live cells
    assert q1[2] / q0[2] == pytest.approx(math.exp(EVIDENCE['log_calibration'].params['sigma']), rel=1e-6)


def test_bad_rows_are_refused_with_every_problem():
    with pytest.raises(ev.EvidenceError) as err:
        ev.evidence_frame([dict(row_id="x", study="s", kind="median", quantity="signal", species="mouse",
                                organ="brain", assay="pet", time_h=1.0, value=0.1)])
    msg = str(err.value)
    assert "kind 'median'" in msg and "assay 'pet'" in msg and "organ 'brain'" in msg


# ------------------------------------------------------------------------------------ bundled evidence


def test_bundled_selection_is_documented_and_the_model_builds_finite():
    sel = evidence_rows.evidence_rows_from_datasets()
    assert set(sel.rows["row_id"]) == {"lee2009:2", "toma2009:3", "toma2009:8"}
    assert (sel.rows["mapping"].str.len() > 20).all() and (sel.rows["source"] != "").all()
    assert (sel.excluded["reason"].str.len() > 10).all()
    # comparators are excluded unless asked, and route-less rows only map with a stated assumption
    assert not sel.excluded[sel.excluded.study == "fischer2009"].empty
    assumed = evidence_rows.evidence_rows_from_datasets(assume={"sci2014_939275": {"route": "intravenous"}})
    extra = assumed.rows[assumed.rows.study == "sci2014_939275"]
    assert set(extra.organ) == {"lung", "liver", "spleen", "kidney"}
    assert extra["mapping"].str.contains("ASSUMED route").all()
    model = ev.build_evidence_model(assumed)
    assert list(model.coords["evidence_row"]) == list(assumed.rows.row_id)
    logp = model.compile_logp(sum=False, mode=FAST)(model.initial_point())
    assert all(np.isfinite(np.sum(x)) for x in logp)


def test_individual_table_is_fitted_jointly_on_shared_study_levels():
    arm = Arm(name="live", dose_cells=5e5, viability=0.95, times_h=(1.0, 24.0), organs=("lung",),
              assays=("dna_qpcr", "bli"), animals_per_time=2)
    table = read_fate_table(simulate(Design(study="virtual", arms=(arm,)), params={"kd": 0.1}, seed=5))
    model = ev.build_evidence_model(evidence_rows.evidence_rows_from_datasets(), fate_frame=table.frame)
    assert list(model.coords["study"]) == ["lee2009", "toma2009", "virtual"]
    assert {v.name for v in model.observed_RVs} == {"evidence", "y"}
    assert model["log_kd_animal"].ndim == 1 and "log_kd_study" in model.named_vars
    logp = model.compile_logp(sum=False, mode=FAST)(model.initial_point())
    assert all(np.isfinite(np.sum(x)) for x in logp)


# ------------------------------------------------------------------------------------ consistency (slow)

TRUTH = {"kd": 0.1, "krel": 0.01, "sd_animal_kd": 0.1, "sd_animal_extraction": 0.2, "sd_animal_recovery": 0.1,
         "sigma_dna_qpcr": 0.3, "sigma_bli": 0.4}


@pytest.mark.slow
def test_summaries_agree_with_individual_data():
    from mscbayes.inference import SamplerSettings, sample
    from mscbayes.families.fate.model import build_fate_model as build_model

    # small on purpose (lung only, live + material assays): compiling the two models dominates the run time
    arm = Arm(name="live", dose_cells=5e5, viability=0.95, times_h=(1.0, 4.0, 24.0, 72.0), organs=("lung",),
              assays=("dna_qpcr", "bli"), animals_per_time=3)
    table = read_fate_table(simulate(Design(study="virtual", arms=(arm,)), params=TRUTH, seed=5))
    summaries = ev.summarise_individual(table.frame)
    assert len(summaries) == 8 and (summaries["n"] == 3).all() and "mean" in set(summaries.kind)
    settings = SamplerSettings(draws=200, tune=200, chains=2, target_accept=0.9)
    ind = sample(build_model(table.frame), settings=settings, seed=1, progress=False)
    summ = sample(ev.build_evidence_model(summaries), settings=settings, seed=1, progress=False)
    assert "evidence" in summ.log_likelihood and summ.log_likelihood["evidence"].shape[-1] == 8
    for name_ind, name_ev in (("log_kd", "log_kd"),
                              ("lung_live_half_life_h", "lung_live_half_life_h_species")):
        a = ind.posterior[name_ind].values.reshape(-1)
        b = summ.posterior[name_ev].sel(species="mouse").values.reshape(-1) if name_ev.endswith("species") \
            else summ.posterior[name_ev].values.reshape(-1)
        # same means within their uncertainty; summaries carry less information (not much less spread)
        assert abs(a.mean() - b.mean()) < 2.0 * math.hypot(a.std(), b.std()), name_ind
        assert b.std() > 0.7 * a.std(), name_ind
    assert abs(np.exp(ind.posterior["log_kd"].mean()) - TRUTH["kd"]) < 0.05

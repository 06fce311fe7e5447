"""Virtual experiments: schema-valid, seed-reproducible, destructive sampling, censoring, truth kept."""

import numpy as np
import pytest

from mscbayes.data import read_fate_table
from mscbayes.mechanisms.assays import detection_limit
from mscbayes.families.fate.simulate import Arm, Design, DesignError, design_from_dict, load_design, simulate, simulate_mechanisms

DESIGN = Design(study="virtual", species="mouse", arms=(
    Arm(name="live", dose_cells=5e5, viability=0.95, times_h=(0.083, 1.0, 24.0, 72.0), organs=("lung", "liver"),
        assays=("cr51", "bli", "reculture"), animals_per_time=3),
    Arm(name="heat-inactivated", dose_cells=5e5, viability=0.0, times_h=(1.0, 24.0), organs=("lung", "liver"),
        assays=("cr51", "bli"), animals_per_time=2),
))


def test_simulated_table_is_schema_valid_and_labelled_simulated():
    t = simulate(DESIGN, seed=3)
    table = read_fate_table(t)
    assert len(table.frame) == len(t) == (4 * 3 * 3 * 2) + (2 * 2 * 2 * 2)
    assert t["source"].str.startswith("simulated").all()
    assert set(t.attrs["truth"]["population"]) >= {"kd", "krel", "kphi", "sigma_cr51"}


def test_same_seed_same_table_other_seed_differs():
    a, b, c = simulate(DESIGN, seed=5), simulate(DESIGN, seed=5), simulate(DESIGN, seed=6)
    assert a.equals(b) and a.attrs["truth"] == b.attrs["truth"]
    assert not a["value"].equals(c["value"])


def test_one_animal_one_time_and_shared_animal_effects():
    t = simulate(DESIGN, seed=1)
    assert (t.groupby("subject")["time_h"].nunique() == 1).all()
    truth = t.attrs["truth"]["animals"]
    assert len(truth["subject"]) == t["subject"].nunique() == 4 * 3 + 2 * 2


def test_heat_inactivated_cells_are_invisible_to_live_assays():
    t = simulate(DESIGN, seed=2)
    hi = t[(t["arm"] == "heat-inactivated") & (t["assay"] == "bli")]
    assert (hi["censored"] == "below_limit").all()
    cr = t[(t["arm"] == "heat-inactivated") & (t["assay"] == "cr51") & (t["organ"] == "lung") & (t["time_h"] == 1.0)]
    assert (cr["value"] > 0.1).all()  # the label is still there


def test_censoring_at_the_detection_limit_and_reculture_binary():
    t = simulate(DESIGN, params={"kd": 0.15}, seed=4)  # prior medians otherwise
    cens = t[t["censored"] == "below_limit"]
    assert len(cens) > 0
    np.testing.assert_allclose(cens["value"], cens["detection_limit"])
    re = t[t["assay"] == "reculture"]
    assert set(re["measure"]) == {"detected"} and set(re["value"]) <= {0.0, 1.0}
    # live cells are gone by 72 h: nothing re-cultured then, most things at 5 min
    assert re[re["time_h"] == 72.0]["value"].mean() < re[re["time_h"] == 0.083]["value"].mean()


def test_fractions_never_exceed_one():
    t = simulate(Design(study="v", arms=(Arm(name="a", times_h=(0.083,), organs=("lung",), assays=("cr51", "dna_qpcr"),
                                             animals_per_time=200),)), seed=0)
    assert t["value"].max() <= 1.0


def test_given_parameters_are_the_truth():
    t = simulate(DESIGN, params={"kd": 0.5, "sd_animal_kd": 0.0}, seed=0)
    pop = t.attrs["truth"]["population"]
    assert pop["kd"] == 0.5
    assert np.allclose(t.attrs["truth"]["animals"]["kd"], 0.5)


def test_design_errors_are_collected_with_suggestions(tmp_path):
    bad = {"study": "x", "arms": [{"name": "a", "route": "intravenus", "assays": ["cr-51"], "organs": ["lungs"],
                                   "times_h": [-1], "viability": 1.5}]}
    with pytest.raises(DesignError) as e:
        design_from_dict(bad, "d.toml")
    msg = str(e.value)
    for needle in ["intravenous", "cr-51", "lungs", "times_h", "viability"]:
        assert needle in msg
    p = tmp_path / "d.toml"
    p.write_text("study = 'x'\n[[arms]\nname='a'")
    with pytest.raises(DesignError, match="not valid TOML"):
        load_design(p)


def test_example_design_loads():
    d = load_design("analyses/iv_biodistribution.toml")
    assert d.arms and d.species == "mouse"
    assert detection_limit("dna_qpcr", "fraction_of_dose", 5e5) == pytest.approx(10 / 5e5)


def test_study_extraction_shift_is_simulated_as_the_model_shifts_it():
    """A negative study shift of logit lung extraction lets more cells pass the lung on first pass: more label in the
    liver at 5 min, and every animal's lung logit offset moves by exactly the shift."""
    base = {"sd_animal_extraction": 0.0}
    a = simulate(DESIGN, params=base, seed=7)
    b = simulate(DESIGN, params={**base, "extraction_shift_study": -3.0}, seed=7)
    np.testing.assert_allclose(np.subtract(b.attrs["truth"]["animals"]["lung_logit_offset"],
                                           a.attrs["truth"]["animals"]["lung_logit_offset"]), -3.0)
    assert b.attrs["truth"]["population"]["extraction_shift_study"] == -3.0

    def liver_5min(t):
        return t[(t["assay"] == "cr51") & (t["organ"] == "liver") & (t["time_h"] == 0.083)]["value"].mean()

    assert liver_5min(b) > 3 * liver_5min(a)


def test_mechanism_simulator_applies_the_study_extraction_shift_too():
    design = Design(study="s", arms=(Arm(name="live", times_h=(4.0,), organs=("lung",), assays=("bli",),
                                         animals_per_time=3, outcome_times_h=(24.0,), readouts=("treg_pct_of_cd4",),
                                         outcome_animals_per_time=1),))
    base = {"sd_animal_extraction": 0.0}
    a = simulate_mechanisms(design, hypothesis="H1", params=base, seed=0)
    b = simulate_mechanisms(design, hypothesis="H1", params={**base, "extraction_shift_study": 1.5}, seed=0)
    np.testing.assert_allclose(np.subtract(b.attrs["truth"]["animals"]["lung_logit_offset"],
                                           a.attrs["truth"]["animals"]["lung_logit_offset"]), 1.5)

"""The prior table: every entry sourced, medians as documented, TOML overrides with clear errors."""

import pytest

from mscbayes.priors import DEFAULT_PRIORS, PriorError, load_priors, override, prior_table


def test_every_prior_has_a_source_and_unit():
    for p in DEFAULT_PRIORS.values():
        assert p.source and p.unit and p.meaning


def test_rate_medians_and_ranges_follow_mechanisms_table():
    assert DEFAULT_PRIORS["kd"].median() == pytest.approx(0.07)
    lo, hi = DEFAULT_PRIORS["kd"].interval()
    assert 0.01 < lo < 0.03 and 0.2 < hi < 0.4  # mechanisms.md §1.5d: 0.02–0.3 per hour
    assert set(prior_table()["name"]) == set(DEFAULT_PRIORS)


def test_toml_override(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text("[priors.kd]\nmedian = 0.2\nsigma = 0.3\n")
    priors = load_priors(p)
    assert priors["kd"].median() == pytest.approx(0.2)
    assert "overridden" in priors["kd"].source
    assert priors["kphi"] == DEFAULT_PRIORS["kphi"]


def test_override_errors_name_the_problem():
    with pytest.raises(PriorError, match="did you mean 'kd'"):
        override(DEFAULT_PRIORS, {"kdd": {"median": 1.0}})
    with pytest.raises(PriorError, match="unknown parameter 'mean'"):
        override(DEFAULT_PRIORS, {"kd": {"mean": 1.0}})
    with pytest.raises(PriorError, match="positive"):
        override(DEFAULT_PRIORS, {"kd": {"median": -1.0}})

"""The prior machinery (mscbayes.priors) and the families' prior tables: every entry sourced, medians as
documented, overrides from TOML and dicts with clear errors, one dispatcher to PyMC."""

from pathlib import Path

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from mscbayes import families
from mscbayes.families.fate.priors import KINETICS, MECHANISMS, PRIORS
from mscbayes.priors import Prior, PriorError, load_priors, override, prior_table, resolve


@pytest.mark.parametrize("name", families.names())
def test_every_prior_of_every_family_has_a_source_unit_and_meaning(name):
    for p in families.get(name).priors.values():
        assert p.source and p.unit and p.meaning, p.name


def test_rate_medians_and_ranges_follow_the_science_notes():
    assert KINETICS["kd"].median() == pytest.approx(0.07)
    lo, hi = KINETICS["kd"].interval(0.95)
    assert 0.01 < lo < 0.03 and 0.2 < hi < 0.4  # docs/science.md §1.5d: 0.02–0.3 per hour
    assert set(prior_table(KINETICS)["name"]) == set(KINETICS)


def test_each_prior_is_written_once_and_the_models_take_subsets():
    assert set(KINETICS) <= set(PRIORS) and set(MECHANISMS) <= set(PRIORS)
    assert "kd" in KINETICS and "kd" not in MECHANISMS and "kd0" in MECHANISMS
    for table in (KINETICS, MECHANISMS):
        assert all(table[k] is PRIORS[k] for k in table)


def test_toml_override(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text("[priors.kd]\nmedian = 0.2\nsigma = 0.3\n")
    priors = load_priors(p, KINETICS)
    assert priors["kd"].median() == pytest.approx(0.2)
    assert "overridden" in priors["kd"].source
    assert priors["kphi"] == KINETICS["kphi"]


def test_override_errors_name_the_problem(tmp_path):
    with pytest.raises(PriorError, match="did you mean 'kd'"):
        override(KINETICS, {"kdd": {"median": 1.0}})
    with pytest.raises(PriorError, match="unknown parameter 'mean'"):
        override(KINETICS, {"kd": {"mean": 1.0}})
    with pytest.raises(PriorError, match="positive"):
        override(KINETICS, {"kd": {"median": -1.0}})
    binary = tmp_path / "priors.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(PriorError, match="not a text file"):
        load_priors(binary, KINETICS)


def test_resolve_accepts_tables_stored_tables_and_overrides():
    stored = {k: v.to_dict() for k, v in KINETICS.items()}
    assert resolve(KINETICS, stored) == KINETICS
    assert resolve(KINETICS, None) == KINETICS
    changed = resolve(KINETICS, {"kd": {"sigma": 1.0}})
    assert changed["kd"].params == {"median": 0.07, "sigma": 1.0}
    assert resolve(KINETICS, {"kd0": {"sigma": 1.0}}, ignore_unknown=True) == KINETICS
    with pytest.raises(PriorError, match="unknown prior 'kd0'"):
        resolve(KINETICS, {"kd0": {"sigma": 1.0}})


@pytest.mark.parametrize("prior", [
    Prior("a", "lognormal", {"median": 0.3, "sigma": 0.5}, "1/h", "m", "s"),
    Prior("b", "normal", {"mu": -1.0, "sigma": 2.0}, "logit", "m", "s"),
    Prior("c", "beta", {"alpha": 8.0, "beta": 2.0}, "fraction", "m", "s"),
    Prior("d", "halfnormal", {"sigma": 0.7}, "ln", "m", "s"),
])
def test_the_pymc_variable_and_the_scipy_distribution_agree(prior):
    """One dispatcher (Prior.rv) builds the variable whose draws follow Prior.frozen (KS test at 0.1 %)."""
    with pm.Model():
        rv = prior.rv()
    draws = pm.draw(rv, draws=4000, random_seed=7)
    assert stats.kstest(draws, prior.frozen().cdf).pvalue > 1e-3


def test_dirichlet_marginal_and_override():
    w = families.get("treg").priors["w"]
    assert w.dist == "dirichlet"
    k = 7
    lo, hi = w.interval(0.95, k=k)
    assert lo == pytest.approx(stats.beta(1.0, 6.0).ppf(0.025)) and hi == pytest.approx(stats.beta(1.0, 6.0).ppf(0.975))
    assert override({"w": w}, {"w": {"alpha": 3.0}})["w"].params == {"alpha": 3.0}
    with pytest.raises(PriorError, match="cannot become"):
        override({"w": w}, {"w": {"dist": "normal", "mu": 0.0, "sigma": 1.0}})
    rng = np.random.default_rng(0)
    assert w.sample(rng, size=10, k=k).shape == (10,)


# ------------------------------------------------------------------ a prior must stay inside its support

WRONG_PRIORS = Path(__file__).resolve().parent / "data" / "bad" / "wrong_priors_negative_rate.toml"


@pytest.mark.parametrize("name", families.names())
def test_every_default_prior_lies_in_its_support_and_rates_are_positive(name):
    """The support is known in one place (each Prior); every rate (unit per hour) and every SD is positive."""
    for p in families.get(name).priors.values():
        assert p.support_problem() is None, p.name
        if p.unit.startswith("1/h") or p.name.startswith(("sd_", "sigma")):
            assert p.support == "positive", p.name


@pytest.mark.parametrize("change", [{"dist": "normal", "mu": -0.01, "sigma": 0.005},
                                    {"dist": "normal", "mu": 0.01, "sigma": 0.005}], ids=["negative", "positive_mu"])
def test_a_normal_prior_on_a_rate_is_refused(change):
    """A normal on krel draws negative release rates whatever its mean: refused, naming what is allowed."""
    with pytest.raises(PriorError) as info:
        override(KINETICS, {"krel": change}, source="p.toml")
    text = str(info.value)
    assert text.startswith("p.toml: prior 'krel'") and "must be positive" in text
    assert "normal prior also draws negative values" in text and "use lognormal or halfnormal" in text


def test_a_priors_file_with_a_negative_rate_is_refused_at_load(tmp_path):
    with pytest.raises(PriorError, match="prior 'krel'.*must be positive"):
        load_priors(WRONG_PRIORS, KINETICS)
    with pytest.raises(PriorError, match="prior 'kd0'.*must be positive"):
        families.get("mechanisms").resolve_priors({"kd0": {"dist": "normal", "mu": 0.0, "sigma": 1.0}})


def test_a_fraction_cannot_get_a_prior_above_one():
    with pytest.raises(PriorError, match="must be a fraction between 0 and 1.*draws values above 1; use beta"):
        override(KINETICS, {"viability": {"dist": "lognormal", "median": 0.9, "sigma": 0.1}})


def test_a_positive_prior_on_a_rate_is_accepted_and_draws_positive_values():
    out = override(KINETICS, {"krel": {"dist": "halfnormal", "sigma": 0.01}})
    assert out["krel"].dist == "halfnormal" and out["krel"].support == "positive"
    assert (out["krel"].sample(np.random.default_rng(0), size=500) > 0).all()
    assert override(KINETICS, {"log_d50_lung": {"dist": "normal", "mu": 2.0, "sigma": 0.3}})  # real: any


def test_whole_tables_are_held_to_the_defaults_support():
    """A table of Prior objects, or a stored table (a fit file's), cannot put a normal on a rate either."""
    bad = Prior("krel", "normal", {"mu": -1.0, "sigma": 1.0}, "1/h", "release", "mine")
    with pytest.raises(PriorError, match="prior 'krel'.*must be positive"):
        resolve(KINETICS, {"krel": bad})
    stored = {k: v.to_dict() for k, v in KINETICS.items()}
    stored["krel"] = bad.to_dict()
    with pytest.raises(PriorError, match="fit.nc: prior 'krel'"):
        resolve(KINETICS, stored, source="fit.nc")
    assert "support" not in KINETICS["krel"].to_dict()  # stored fits keep their form


def test_fit_command_refuses_the_priors_file_before_sampling(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mscbayes import api
    from mscbayes.cli import app

    monkeypatch.setattr(api, "fit", lambda *a, **k: pytest.fail("sampling started"))
    data = Path(__file__).resolve().parent / "fixtures" / "fate_clean.csv"
    clean = tmp_path / "data.csv"
    lines = data.read_text().splitlines()
    kinds = lines[0].split(",").index("row_kind")
    clean.write_text("\n".join([lines[0]] + [x for x in lines[1:] if x.split(",")[kinds] == "individual"]) + "\n")
    r = CliRunner().invoke(app, ["fit", str(clean), "--out", str(tmp_path / "fit.nc"), "--priors", str(WRONG_PRIORS)])
    assert r.exit_code == 2, r.output
    assert "prior 'krel'" in r.output and "use lognormal or halfnormal" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "fit.nc").exists()

# --------------------------------------------------------------------------- sources a reader can open

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
_SCIENCE = (ROOT / "docs" / "science.md").read_text(encoding="utf-8")


def _every_source() -> list[str]:
    return [p.source for name in families.names() for p in families.get(name).priors.values()]


def test_source_tags_are_the_ones_the_science_notes_define():
    import re

    from mscbayes.priors import SOURCE_TAGS

    table = _SCIENCE[_SCIENCE.index("## Tags and units"):_SCIENCE.index("## 0.")]
    documented = dict(re.findall(r"^\| \*\*\[([\w-]+)\]\*\* \| (.+?) \|$", table, re.MULTILINE))
    assert documented == SOURCE_TAGS
    used = {t for s in _every_source() for t in re.findall(r"\[([A-Z][\w-]*)", s)}
    assert used and used <= set(SOURCE_TAGS), used - set(SOURCE_TAGS)


def test_every_cited_file_and_section_exists_in_the_repository():
    """Sources cite docs/<file> §N of this repository (never a file that is not there, such as the old
    mechanisms.md): each file exists and has that section heading."""
    import re

    cited = {m for s in _every_source() for m in re.findall(r"\b((?:docs/)?[\w-]+\.md)(?: §(\d+(?:\.\d+)?[a-z]?))?", s)}
    assert cited
    for file, section in cited:
        path = ROOT / (file if file.startswith("docs/") else f"docs/{file}")
        assert path.is_file(), f"a prior source cites {file}, which is not in the repository"
        if section:
            assert re.search(rf"^#+ {re.escape(section)}[ .]", path.read_text(encoding="utf-8"), re.MULTILINE), \
                f"{file} has no section §{section}"
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "mscbayes").rglob("*.py"))
    assert "mechanisms.md" not in code


def test_every_cited_paper_is_listed_with_a_doi_or_pmc_id():
    """A paper cited by author and year in a prior source is in docs/science.md §12 (`REFERENCES`), on a line
    with its DOI, PubMed Central id or journal year;volume, or marked [M] there (from memory: to be checked)."""
    import re

    from mscbayes.priors import REFERENCES

    assert REFERENCES == "docs/science.md §12"
    refs = _SCIENCE[_SCIENCE.index("## 12. References"):].splitlines()
    cites = {m for s in _every_source() for m in re.findall(r"([A-Z][A-Za-zöü-]+) ((?:19|20)\d\d)\b", s)}
    assert len(cites) > 10
    for author, year in sorted(cites):
        lines = [line for line in refs if author in line and year in line]
        assert lines, f"{author} {year} is cited in a prior source but not listed in {REFERENCES}"
        assert any(re.search(r"doi:|PMC\d|\d{4};\d+|\[M\]", line) for line in lines), \
            f"{author} {year}: {REFERENCES} gives no DOI, PMC id or journal volume for it"

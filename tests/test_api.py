"""The public workflow as a notebook user types it (`import mscbayes as mb`), without sampling: every name the
README documents is there and is the function (not a submodule of the same name), and the calls that need no
sampler do what they say."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pymc as pm
import pytest

import mscbayes as mb

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "fate_clean.csv"
NAMES = ("read_table", "load_dataset", "list_datasets", "simulate", "build_model", "fit", "load_fit", "compare",
         "report", "run", "plot_data", "plot_ppc", "plot_loo_pit", "plot_prior_posterior", "plot_comparison",
         "plot_pathways")


def test_every_documented_name_is_a_function_even_after_the_submodules_are_imported():
    import mscbayes.analysis  # noqa: F401  the modules behind run, compare and report
    import mscbayes.comparison  # noqa: F401
    import mscbayes.reporting  # noqa: F401

    for name in NAMES:
        assert callable(getattr(mb, name)) and not isinstance(getattr(mb, name), type(mb)), name
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in set(re.findall(r"\bmb\.([a-z_]+)\(", readme)):
        assert callable(getattr(mb, name)), f"README uses mb.{name}"
    with pytest.raises(AttributeError):
        mb.no_such_name  # noqa: B018


def test_read_table_and_build_model_follow_the_table_and_hypothesis():
    assert mb.read_table(FIXTURE).kind == "fate"
    table = mb.read_table(mb.simulate(ROOT / "analyses" / "iv_biodistribution.toml", seed=1))
    assert table.kind == "fate" and len(table.frame) > 0
    assert mb.model_for(table).name == "fate" and mb.model_for(table, "H2").name == "mechanisms"
    model = mb.build_model(table, priors={"kd": {"median": 0.1}})
    assert isinstance(model, pm.Model) and "kd" in model.named_vars
    with pytest.raises(mb.families.UnknownHypothesisError, match="H9"):
        mb.build_model(table, hypothesis="H9")


def test_simulate_a_design_file_and_a_dict():
    frame = mb.simulate(ROOT / "analyses" / "iv_biodistribution.toml", seed=1)
    assert isinstance(frame, pd.DataFrame) and frame.attrs["truth"]["seed"] == 1
    again = mb.simulate(ROOT / "analyses" / "iv_biodistribution.toml", seed=1)
    pd.testing.assert_frame_equal(frame, again)
    outcomes = mb.simulate({"study": "s", "arms": [{"name": "live", "times_h": [], "assays": [],
                                                    "outcome_times_h": [24], "readouts": ["treg_pct_of_cd4"]}]},
                           seed=2, hypothesis="H1")
    assert outcomes.attrs["truth"]["hypothesis"] == "H1" and set(outcomes["readout"]) == {"treg_pct_of_cd4"}


def test_bundled_datasets_are_reachable():
    listing = mb.list_datasets()
    assert "lee2009" in set(listing["name"])
    assert "derived" in mb.load_dataset("lee2009")

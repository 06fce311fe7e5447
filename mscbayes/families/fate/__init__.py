"""The fate family: where an MSC dose goes, how fast the cells die and where their remains end up, and which
mechanism (H0–H4) the outcome data support. Three models over one hierarchy (`hierarchy`), one observation
layer (`observations`), one prior table (`priors`) and one simulator (`simulate`):

    FATE         the kinetics-only model of individual fate measurements        (`model.build_fate_model`)
    MECHANISMS   the fate kinetics with immune handling + outcome rows under H0–H4 (`mechanism_model`)
    EVIDENCE     published summaries (means, ranges, bounds, k of n, half-lives)  (`evidence`, `evidence_rows`)
"""

from __future__ import annotations

import pandas as pd

from mscbayes.data.outcomes import read_invivo_table, split_parts
from mscbayes.mechanisms import hypotheses as hyp

from ..contract import Family, ModelDataError
from . import evidence, evidence_rows, mechanism_model, model, observations, priors, report
from . import simulate as sim

__all__ = ["FATE", "MECHANISMS", "EVIDENCE", "ModelDataError"]


def _simulate(design, *, seed: int, params: dict | None = None, hypothesis: str | None = None) -> pd.DataFrame:
    """A virtual experiment: fate rows (and outcome rows when the design has readouts), generated under
    `hypothesis` (default: the design's own, else H0) when the design is mechanistic or a hypothesis is given."""
    if hypothesis is not None:
        return sim.simulate_mechanisms(design, hypothesis, params=params, seed=seed)
    return sim.simulate(design, params=params, seed=seed)


def _build_fate(frame, priors_, hypothesis):
    return model.build_fate_model(frame, priors_, hypothesis)


def _build_mechanisms(frame, priors_, hypothesis):
    return mechanism_model.build_mechanism_model(frame, priors_, hypothesis)


def _check_fate_data(frame: pd.DataFrame, hypothesis: str | None) -> None:
    """Fate rows must be individual measurements (published summaries have no likelihood here)."""
    fate = split_parts(frame).get("fate")
    if fate is not None:
        observations.require_individual_rows(fate)


def _check_mechanism_data(frame: pd.DataFrame, hypothesis: str | None) -> None:
    """A therapeutic hypothesis (H1–H4, H_mix) needs outcome rows; H0 also fits fate or NK rows alone."""
    _check_fate_data(frame, hypothesis)
    if hypothesis != "H0" and "outcome" not in split_parts(frame):
        raise ModelDataError(
            f"hypothesis {hypothesis} needs outcome rows (Treg %, IL-10⁺ macrophage %, cytokines or a disease "
            "score): H0–H4 differ only in the outcomes they predict, so on fate rows alone every hypothesis fits "
            "the same; fit the kinetics-only fate model instead (no hypothesis)")


def _evidence_groups(frame: pd.DataFrame, group: str = "study") -> dict:
    who = frame["study"] if group == "study" else frame["row_id"]
    return {"evidence": who.astype(str).to_numpy()}


def _build_evidence(frame, priors_, hypothesis):
    return evidence.build_evidence_model(frame, priors_)


FATE = Family(
    name="fate",
    label="fate kinetics",
    description="hierarchical kinetics of trapping, death, engulfment and clearance fitted to individual "
                "fate measurements (Cr-51, 111In, BLI, qPCR, re-culture, flow ...)",
    table_kinds=("fate", "invivo"),
    read_table=read_invivo_table,
    priors=priors.KINETICS,
    build=_build_fate,
    hypotheses={None: "kinetics only (no mechanism hypothesis)"},
    default_hypothesis=None,
    hypothesis_aliases={"kinetics": None},
    load_design=sim.design_from_dict,
    simulate=_simulate,
    draw_truth=sim.draw_kinetics_truth,
    observation_groups=mechanism_model.observation_groups,
    default_group="animal",
    derived=model.DERIVED,
    design_notes=report.design_notes,
    data_summary=report.data_summary,
    predictive_check=("y", report.continuous_rows),
    check_data=_check_fate_data,
)

MECHANISMS = Family(
    name="mechanisms",
    label="mechanism (H0–H4)",
    description="the fate kinetics with NK and phagocyte handling, and one regulatory-effect compartment driven "
                "by the hypothesis under test, fitted to fate and outcome rows together",
    table_kinds=("invivo", "fate"),
    read_table=read_invivo_table,
    priors=priors.MECHANISMS,
    build=_build_mechanisms,
    hypotheses=dict(hyp.HYPOTHESES),
    default_hypothesis="H0",
    load_design=sim.design_from_dict,
    simulate=_simulate,
    draw_truth=sim.draw_mechanism_truth,
    observation_groups=mechanism_model.observation_groups,
    default_group="animal",
    design_notes=report.design_notes,
    data_summary=report.data_summary,
    predictive_check=("y", report.continuous_rows),
    check_data=_check_mechanism_data,
)

EVIDENCE = Family(
    name="evidence",
    label="published evidence",
    description="published summaries of MSC fate (means, ranges, bounds, k of n, half-lives, ratios), each "
                "through the likelihood of how it was printed, on the fate family's quantities",
    table_kinds=("evidence",),
    read_table=evidence.read_evidence_table,
    priors=priors.EVIDENCE,
    build=_build_evidence,
    hypotheses={None: "the fate kinetics (no mechanism hypothesis)"},
    default_hypothesis=None,
    hypothesis_aliases={"kinetics": None},
    observation_groups=_evidence_groups,
    default_group="study",
    derived=evidence.DERIVED,
    data_summary=report.evidence_summary,
    bundled=lambda **options: evidence_rows.evidence_rows_from_datasets(**options).rows,
)

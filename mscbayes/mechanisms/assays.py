"""What each tracking assay sees (docs/science.md §5): a linear read-out of the fate states.

    live only            bli, mrna_qpcr, reculture        X_j
    cell material        dna_qpcr                         X_j + Y_j + Z_j        (digested DNA is gone)
    label kept locally   dye, mri                         X_j + Y_j + Z_j + D_j  (lipophilic dye and iron oxide stay in the host phagocyte)
    dead, not engulfed   flow_dead                        Y_j
    engulfed material    flow_engulfed                    Z_j
    radiolabel           cr51, in111, tc99m               X_j + Y_j + Z_j + g_j · D_total
                         (label freed by digestion is excreted or re-taken up by organ j with fraction g_j;
                          D_total = dose − Σ_k (X_k + Y_k + Z_k) by mass balance, so no deeper chain is solved)

Only the two flow-cytometry read-outs separate free dead cells (Y) from engulfed material (Z); without
them every assay sees Y + Z together and the engulfment rate k_phi trades off against digestion and
phagocyte migration (docs/science.md §3.3, "Identifiability (phagocytosis)").

Radioactivity is taken as decay-corrected to the time of injection, as published %ID values are.
Label efflux from live cells is not modelled in the default (it would need a labelled-live pool).
The `whole_body` organ is the sum over all organs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .backend import NP, Backend
from .trapping import ORGAN_INFO, ORGANS

LIVE_ONLY = ("bli", "mrna_qpcr", "reculture")
MATERIAL = ("dna_qpcr",)
LOCAL_LABEL = ("dye", "mri")
FLOW = ("flow_dead", "flow_engulfed")
RADIOLABELS = ("cr51", "in111", "tc99m")

# Fraction of label freed by digestion that is re-taken up per organ (the rest is excreted). Free
# chromate is cleared by the kidney into urine; 111In binds transferrin and goes to liver, spleen and
# marrow ("rest"); 99mTc complexes leave through kidney and gut. Magnitudes are design choices [D]
# pending free-label control data (docs/science.md §5.2).
FREE_LABEL_UPTAKE = {
    "cr51": {"kidney": 0.05},
    "in111": {"liver": 0.3, "spleen": 0.1, "rest": 0.3},
    "tc99m": {"kidney": 0.1, "rest": 0.1},
}


@dataclass(frozen=True)
class AssayInfo:
    name: str
    sees: str            # "live", "material", "local_label", "radiolabel", "dead", "engulfed"
    noise_sd_prior: float  # HalfNormal scale of the log-scale residual SD (docs/science.md §5.3)
    description: str


#: Every tracking assay the toolkit knows: what it sees, the scale of its residual-SD prior (the fate family's
#: ``sigma_<assay>`` prior rows are made from it) and how it is described to users (the data layer adds the
#: spellings it accepts). Adding an assay: a row here and its aliases in mscbayes/data/fate.py.
ASSAY_INFO = {
    "cr51": AssayInfo("cr51", "radiolabel", 0.3, "51Cr-chromate-labelled cells, organ radioactivity (gamma counting): "
                      "cell-bound label plus re-deposited free label"),
    "in111": AssayInfo("in111", "radiolabel", 0.3, "111In-oxine-labelled cells, organ radioactivity or SPECT/gamma-"
                       "camera imaging: cell-bound label plus re-deposited free label"),
    "tc99m": AssayInfo("tc99m", "radiolabel", 0.3, "99mTc (e.g. HMPAO)-labelled cells, organ radioactivity or SPECT "
                       "imaging: cell-bound label plus re-deposited free label"),
    "bli": AssayInfo("bli", "live", 0.7, "bioluminescence imaging of luciferase-expressing cells (live cells only)"),
    "dna_qpcr": AssayInfo("dna_qpcr", "material", 0.7, "species- or sex-specific genomic DNA qPCR (human Alu, SRY): "
                          "live, dead and engulfed cell material until digested"),
    "mrna_qpcr": AssayInfo("mrna_qpcr", "live", 0.7, "RT-qPCR of a transcript of the infused cells (live cells)"),
    "reculture": AssayInfo("reculture", "live", 0.7, "re-culture of labelled/marked cells out of the harvested organ "
                           "(live cells; usually detected yes/no)"),
    "dye": AssayInfo("dye", "local_label", 0.5, "fluorescent membrane/cytoplasmic dye (DiI, DiR, PKH26, CFSE) by "
                     "histology or flow cytometry: follows cell material and stays in host phagocytes"),
    "mri": AssayInfo("mri", "local_label", 0.5, "MRI of iron-oxide (SPIO) or other contrast-labelled cells: follows "
                     "cell material and stays in host phagocytes"),
    # flow cytometry of organ digests for the infused cells' label (docs/science.md §3.3; de Witte 2018 Stem Cells
    # traced MSC material into host monocytes by flow); noise SDs [D]
    "flow_dead": AssayInfo("flow_dead", "dead", 0.5, "flow cytometry of organ digests: labelled infused cells that are "
                           "dead or apoptotic and not inside host phagocytes (dead, not yet engulfed)"),
    "flow_engulfed": AssayInfo("flow_engulfed", "engulfed", 0.5, "flow cytometry of organ digests: infused-cell label "
                               "inside host phagocytes, in infused-cell equivalents (engulfed material)"),
}
ASSAYS = tuple(ASSAY_INFO)

#: Where a read-out can be taken: the model's organs, or the whole body (their sum).
READOUT_ORGANS = {**ORGAN_INFO, "whole_body": "the whole animal or patient (whole-body imaging or counting): the "
                                              "sum over every organ"}


_SINGLE_STATE = {"live": "X", "dead": "Y", "engulfed": "Z"}


def assay_signal(states: dict, assay: str, organ: str, xp: Backend = NP):
    """Amount (cells or cell equivalents) that `assay` attributes to `organ`."""
    if organ == "whole_body":
        total = 0.0
        for o in ORGANS:
            total = total + assay_signal(states, assay, o, xp)
        return total
    info = ASSAY_INFO[assay]
    if info.sees in _SINGLE_STATE:
        return states[f"{_SINGLE_STATE[info.sees]}_{organ}"]
    live = states[f"X_{organ}"]
    material = live + states[f"Y_{organ}"] + states[f"Z_{organ}"]
    if info.sees == "material":
        return material
    if info.sees == "local_label":
        return material + states[f"D_{organ}"]
    share = FREE_LABEL_UPTAKE[assay].get(organ, 0.0)
    if share == 0.0:
        return material
    return material + share * states["D_total"]


def states_needed(assays, organs) -> tuple[str, ...]:
    """The fate states an (assay, organ) set reads, so a model solves only those."""
    need = set()
    organ_list = set()
    for o in organs:
        organ_list.update(ORGANS if o == "whole_body" else [o])
    for a in assays:
        sees = ASSAY_INFO[a].sees
        for o in organ_list:
            if sees in _SINGLE_STATE:
                need.add(f"{_SINGLE_STATE[sees]}_{o}")
                continue
            need.update({f"X_{o}", f"Y_{o}", f"Z_{o}"})
            if sees == "local_label":
                need.add(f"D_{o}")
        # freed label is read only where an organ re-takes it up (Cr-51: kidney); elsewhere the radiolabel
        # sees material alone, and D_total (which needs X, Y, Z of every organ) is not solved
        if sees == "radiolabel" and any(FREE_LABEL_UPTAKE[a].get(o, 0.0) for o in organ_list):
            need.add("D_total")
    order = [f"{k}_{o}" for k in ("X", "Y", "Z", "D") for o in ORGANS] + ["D_total"]
    return tuple(s for s in order if s in need)


def identifiability_notes(assays) -> list[str]:
    """What a set of tracking assays cannot tell apart (docs/science.md §1.6 and §5.4), as sentences for a fit's
    user; empty when the read-outs separate the rates. `assays`: the assay names of a fate table's rows."""
    present = {str(a) for a in assays} & set(ASSAY_INFO)
    if not present:
        return []
    notes = []
    if not present & set(LIVE_ONLY + ("flow_dead",)):
        notes.append(
            "no read-out tells live from dead MSC (live-only: bli, mrna_qpcr or reculture; or flow_dead): the "
            "death rate kd and the release of live cells from the lung krel are identified only through their "
            "sum, so expect wide, correlated posteriors for both (docs/science.md §1.6); a live-only assay at the "
            "same times separates them")
    if not present & set(FLOW):
        notes.append(
            "no flow read-out of dead (flow_dead) or engulfed (flow_engulfed) MSC: every assay sees free dead "
            "cells and engulfed material together, so engulfment kphi trades off against digestion kdig and "
            "phagocyte migration kmig (docs/science.md §3.3); a clodronate arm or a flow read-out separates them")
    return notes


# Default detection limits when a table gives none: (unit, value, source). "cells" limits are per organ
# sample; "fraction" limits are fractions of the injected dose.
DETECTION_LIMITS = {
    "bli": ("cells", 1e3, "~1e3–1e4 cells deep in the body (docs/science.md §5.1) [M]"),
    "dna_qpcr": ("cells", 10.0, "10 human cells per mouse organ (Funakoshi 2017 Sci Rep, doi:10.1038/s41598-017-13402-3) [V]"),
    "mrna_qpcr": ("cells", 10.0, "taken equal to DNA qPCR [D]"),
    "reculture": ("cells", 100.0, "outgrowth needs a few viable cells per sample [D]"),
    "cr51": ("fraction", 1e-4, "counting-limited, ~0.01–0.1 % of injected dose per organ (docs/science.md §5.1) [M]"),
    "in111": ("fraction", 1e-4, "as Cr-51 [M]"),
    "tc99m": ("fraction", 1e-4, "as Cr-51 [M]"),
    "dye": ("fraction", 1e-3, "tissue autofluorescence background [D]"),
    "mri": ("cells", 1e4, "roughly 1e4 labelled cells per voxel (docs/science.md §5.1) [M]"),
    "flow_dead": ("cells", 100.0, "a few dozen gated events per organ digest [D]"),
    "flow_engulfed": ("cells", 100.0, "as flow_dead [D]"),
}


def detection_limit(assay: str, measure: str, dose_cells: float) -> float:
    """Default detection limit of an assay in the unit of `measure` (fraction_of_dose, cells or detected)."""
    unit, value, _ = DETECTION_LIMITS[assay]
    if measure == "cells":
        return value if unit == "cells" else value * dose_cells
    return value / dose_cells if unit == "cells" else value

"""Constants shared by every layer of mscbayes (one place for each)."""

from __future__ import annotations

#: Probability mass of every credible interval the toolkit reports (summaries, figures, report text).
INTERVAL_PROB: float = 0.94

#: Group over which leave-one-out runs when a family does not say otherwise.
DEFAULT_LOO_GROUP: str = "animal"

"""The Treg family's comparison likelihood: each donor's data with that donor's baselines integrated out (a
new-donor predictive), so leave-one-donor-out PSIS-LOO compares rules on how well they predict a new donor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .model import expit

if TYPE_CHECKING:  # annotations only
    import xarray as xr

__all__ = ["donor_log_likelihood", "donor_marginal_view", "loo_view"]



_GH_X, _GH_W = np.polynomial.hermite.hermgauss(20)


def _row_logp(mu, y, is_count, n, sigma, phi):
    """log p(y_i | logit mean mu) per row (numpy): logit-normal for proportions, beta-binomial for counts."""
    from scipy.special import betaln, gammaln

    out = np.empty(np.broadcast_shapes(np.shape(mu), np.shape(y)))
    cnt = is_count == 1
    if (~cnt).any():
        p = np.where(cnt, 0.5, y)
        z = (np.log(p) - np.log1p(-p) - mu) / sigma
        lp = -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi) - np.log(p) - np.log1p(-p)
        out = np.where(cnt, 0.0, lp)
    if cnt.any():
        m = expit(mu)
        a, b = m * phi, (1.0 - m) * phi
        k = np.where(cnt, y, 0.0)
        nn = np.where(cnt, n, 1.0)
        lp = (gammaln(nn + 1) - gammaln(k + 1) - gammaln(nn - k + 1) + betaln(k + a, nn - k + b) - betaln(a, b))
        out = np.where(cnt, lp, out)
    return out


def donor_log_likelihood(fit) -> "xr.DataArray":
    """Log-likelihood of each donor's data with that donor's baselines integrated out: a *new-donor*
    predictive, shape (chain, draw, donor).

    log p(y_d | θ) = Σ_o log ∫ Π_i p(y_i | α + E_max,o D_i) N(α | μ_α,o, σ_α,o) dα, computed per draw by
    Gauss–Hermite quadrature centred on the normal approximation of α's conditional posterior (exact
    for percentage rows, where the integrand is Gaussian in α). Leave-one-donor-out PSIS-LOO on these
    is far better behaved than on the conditional log-likelihood, whose donor effects make every
    donor influential.
    """
    import xarray as xr

    idata = getattr(fit, "idata", fit)
    post = idata.posterior
    cd = idata.constant_data
    y = np.asarray(idata.observed_data["treg"].values, dtype=float)
    donor_idx = np.asarray(cd["donor_index"].values, dtype=int)
    ro_idx = np.asarray(cd["readout_index"].values, dtype=int)
    is_count = np.asarray(cd["is_count"].values, dtype=float)
    n_ev = np.asarray(cd["n_events"].values, dtype=float)
    nc, nd_ = post.sizes["chain"], post.sizes["draw"]
    S = nc * nd_

    def flat(name):
        v = post[name].values
        return v.reshape((S,) + v.shape[2:])

    drive = flat("drive")                       # (S, obs)
    emax, mu_a, sd_a = flat("emax"), flat("mu_alpha"), flat("sigma_alpha")   # (S, R)
    sigma = flat("sigma") if "sigma" in post else np.ones_like(emax)
    phi = flat("phi") if "phi" in post else np.full(S, 1.0)
    f = emax[:, ro_idx] * drive                 # (S, obs)
    donors = [str(d) for d in post["donor"].values]
    out = np.zeros((S, len(donors)))
    x, w = _GH_X, _GH_W
    for d in range(len(donors)):
        for o in np.unique(ro_idx[donor_idx == d]):
            rows = np.flatnonzero((donor_idx == d) & (ro_idx == o))
            yi, ci, ni = y[rows], is_count[rows], n_ev[rows]
            fi = f[:, rows]                                        # (S, n)
            # working normal approximation of each row on the logit scale
            p_hat = np.where(ci == 1, (yi + 0.5) / (ni + 1.0), yi)
            z = np.log(p_hat) - np.log1p(-p_hat) - fi              # (S, n)
            v_cnt = 1.0 / ((ni + 1.0) * p_hat * (1 - p_hat)) + 1.0 / ((phi[:, None] + 1.0) * p_hat * (1 - p_hat))
            v = np.where(ci == 1, v_cnt, sigma[:, o, None] ** 2)
            prec = 1.0 / sd_a[:, o] ** 2 + (1.0 / v).sum(axis=1)
            m = (mu_a[:, o] / sd_a[:, o] ** 2 + (z / v).sum(axis=1)) / prec
            s_ = 1.0 / np.sqrt(prec)
            alpha_q = m[:, None] + np.sqrt(2.0) * s_[:, None] * x[None, :]       # (S, Q)
            mu_rows = alpha_q[:, :, None] + fi[:, None, :]                       # (S, Q, n)
            ll = _row_logp(mu_rows, yi, ci, ni, sigma[:, o, None, None], phi[:, None, None]).sum(axis=-1)
            log_prior = (-0.5 * ((alpha_q - mu_a[:, o, None]) / sd_a[:, o, None]) ** 2
                         - np.log(sd_a[:, o, None]) - 0.5 * np.log(2 * np.pi))
            # ∫ g(α) dα with α = m + √2 s x:  ≈ √2 s Σ_q w_q e^{x_q²} g(α_q)
            terms = np.log(w)[None, :] + x[None, :] ** 2 + ll + log_prior
            top = terms.max(axis=1, keepdims=True)
            out[:, d] += top[:, 0] + np.log(np.exp(terms - top).sum(axis=1)) + np.log(np.sqrt(2.0) * s_)
    return xr.DataArray(out.reshape(nc, nd_, len(donors)), dims=("chain", "draw", "donor"),
                        coords={"chain": post["chain"].values, "draw": post["draw"].values, "donor": donors},
                        name="treg_new_donor")


@dataclass(frozen=True)
class _DonorMarginalFit:
    """A view of a fit whose log-likelihood is the new-donor marginal per donor (for comparison)."""

    idata: Any
    data_sha256: str | None


def donor_marginal_view(fit) -> _DonorMarginalFit:
    """The fit with ``log_likelihood["treg_new_donor"]`` (chain, draw, donor) from
    `donor_log_likelihood`, ready for `mscbayes.comparison.compare_models(..., group="donor")`."""
    import arviz as az
    import xarray as xr

    idata = getattr(fit, "idata", fit)
    ll = donor_log_likelihood(fit)
    view = az.InferenceData(posterior=idata.posterior, log_likelihood=xr.Dataset({ll.name: ll}))
    view.attrs = dict(getattr(idata, "attrs", {}) or {})
    return _DonorMarginalFit(idata=view, data_sha256=getattr(fit, "data_sha256", None))


def loo_view(fit) -> tuple[Any, str]:
    """(the fit with its new-donor log-likelihood, "donor"): what `mscbayes.comparison` compares Treg rules on."""
    return donor_marginal_view(fit), "donor"

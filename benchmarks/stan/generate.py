"""Write the mscbayes fate model as a Stan program, from the toolkit's own definitions.

Nothing about the kinetics is retyped here. The generator evaluates the toolkit's functions on symbolic
scalars (`Sym`, which print as Stan expressions):

  - the network (`kinetics.fate_network`: loss rates, edges, loss keys) built from symbolic rates and
    the arterial allocation that `trapping.arterial_allocation` returns for symbolic bed extractions;
  - the paths of every wanted state (`kinetics._paths`, the same cached enumeration
    `solve_closed_form` uses), summed as x0(source) · Π(edge rates) · conv(sorted loss rates; t);
  - the first-pass allocation (`trapping.allocation` for the route) and the initial state
    (`kinetics.initial_state`);
  - the assay read-outs (`assays.assay_signal`, with `assays.states_needed`);
  - the priors (the fate family's prior table, `mscbayes.families.fate.priors.KINETICS`) and the parameterisation the PyMC model chose
    (`model.mscbayes_parameterisation`).

The convolution `conv` is a Stan function written to follow `mechanisms/convolution.py` step by step
(sorted rates, e^{-λmin t} factored out, scaled divided differences level by level, Taylor branch of
order TAYLOR_ORDER below span DELTA, `(1 − e^{-p})/p` series below _TINY); its constants are read from
that module. The Gauss–Hermite nodes and weights of the size model are read from `trapping`.

The log density keeps every normalising constant (`target += *_lpdf`), as PyMC's does, so the two can be
compared value for value (sampler_benchmark.py --check-logp).
"""

from __future__ import annotations

import math

import numpy as np

from mscbayes.mechanisms import assays as assay_mod
from mscbayes.mechanisms import convolution, kinetics, trapping
from mscbayes.families.fate.observations import BACKGROUND_FRACTION, prepare
from mscbayes.families.fate.priors import KINETICS as DEFAULT_PRIORS


# ------------------------------------------------------------------------------------ symbolic scalars


def _fmt(x) -> str:
    if isinstance(x, Sym):
        return x.code
    if isinstance(x, (int, float, np.floating, np.integer)):
        r = repr(float(x))
        return r if ("e" in r or "." in r or "inf" in r or "nan" in r) else r + ".0"
    raise TypeError(f"cannot write {x!r} as Stan code")


class Sym:
    """A real-valued Stan expression. Arithmetic with floats and other Syms builds new expressions; while an
    `_Emitter` is active, every distinct compound expression is bound once to a local variable (hash-consing),
    so shared sub-expressions (e.g. 1 - E_sys inside every allocation) are computed once, as pytensor's
    common-subexpression elimination does for the PyMC graph."""

    active: "_Emitter | None" = None

    def __init__(self, code: str):
        self.code = code

    @staticmethod
    def _make(code: str) -> "Sym":
        em = Sym.active
        return em.bind(code) if em is not None else Sym(code)

    def _bin(self, op, other, reverse=False):
        if not isinstance(other, (Sym, int, float, np.floating, np.integer)):
            return NotImplemented
        a, b = (_fmt(other), self.code) if reverse else (self.code, _fmt(other))
        return Sym._make(f"{a} {op} {b}")

    @staticmethod
    def _is(o, value):
        return not isinstance(o, Sym) and o == value

    def __add__(self, o):
        return self if self._is(o, 0) else self._bin("+", o)

    def __radd__(self, o):
        return self if self._is(o, 0) else self._bin("+", o, True)

    def __sub__(self, o):
        return self._bin("-", o)

    def __rsub__(self, o):
        return self._bin("-", o, True)

    def __mul__(self, o):  # x * 1.0 == x exactly
        return self if self._is(o, 1) else self._bin("*", o)

    def __rmul__(self, o):
        return self if self._is(o, 1) else self._bin("*", o, True)

    def __truediv__(self, o):
        return self._bin("/", o)

    def __rtruediv__(self, o):
        return self._bin("/", o, True)

    def __neg__(self):
        return Sym._make(f"-{self.code}")

    def __repr__(self):
        return f"Sym({self.code})"


class _Emitter:
    """Collects `real name = expr;` lines; binds each distinct expression once."""

    def __init__(self, indent="    "):
        self.lines: list[str] = []
        self.indent = indent
        self.cache: dict[str, Sym] = {}

    def bind(self, code: str) -> Sym:
        if code not in self.cache:
            name = f"e{len(self.cache)}"
            self.lines.append(f"{self.indent}real {name} = {code};")
            self.cache[code] = Sym(name)
        return self.cache[code]

    def let(self, name: str, value) -> Sym:
        self.lines.append(f"{self.indent}real {name} = {_fmt(value)};")
        return Sym(name)

    def __enter__(self):
        Sym.active = self
        return self

    def __exit__(self, *exc):
        Sym.active = None


# ------------------------------------------------------------------------------------ kinetics body


def _signals_function(requests, species: str, route: str, route_organ: str, target_flow_fraction: float) -> str:
    """Stan function: expected signal (cells) of each request (assay, organ) for one unit."""
    for a, o in requests:
        if a not in assay_mod.ASSAY_INFO:
            raise ValueError(f"unknown assay {a}")
    with _Emitter() as em:
        return _signals_body(em, requests, species, route, route_organ, target_flow_fraction)


def _signals_body(em, requests, species, route, route_organ, target_flow_fraction) -> str:
    E = {"lung": Sym("E_lung")}
    for j in trapping.SYSTEMIC:
        E[j] = Sym("E_sys")
    br = trapping.branches(species, target_flow_fraction)
    alloc = trapping.allocation(route, E, br, route_organ=route_organ or None, local_leak=Sym("local_leak"))
    alloc = {o: em.let(f"P_{o}", alloc[o]) for o in trapping.ORGANS}
    p_art = trapping.arterial_allocation(E, br)
    p_art = {o: em.let(f"Pa_{o}", p_art[o]) for o in trapping.ORGANS}
    rates = {k: Sym(k) for k in kinetics.RATE_NAMES}
    net = kinetics.fate_network(rates, p_art)
    x0 = kinetics.initial_state(Sym("dose"), Sym("viab"), alloc)
    x0 = {s: em.let(f"x0_{s}", v) for s, v in x0.items()}
    wanted = assay_mod.states_needed({a for a, _ in requests}, {o for _, o in requests})

    # --- mirror of kinetics.solve_closed_form, symbolically
    sources = tuple(s for s in net.states if s in x0)
    paths = kinetics._paths(net.structure, sources)
    state_keys = dict(zip(net.states, net.structure[0]))
    rate_of_key = {state_keys[s]: net.loss[s] for s in net.states}
    rate_of_key = {k: em.let(f"loss_{k}", v) if isinstance(v, Sym) else v for k, v in rate_of_key.items()}
    targets = wanted
    want_d_total = "D_total" in targets
    if want_d_total:
        xyz = tuple(s for s in net.states if s[0] in "XYZ")
        targets = tuple(dict.fromkeys([s for s in targets if s != "D_total"] + list(xyz)))
    needed = sorted({tuple(sorted(state_keys[s] for s in seq)) for tg in targets for seq, _ in paths.get(tg, ())})
    conv_of = {}
    for i, key in enumerate(needed):
        args = ", ".join(_fmt(rate_of_key[k]) for k in key)
        conv_of[key] = em.let(f"c{i}_{'_'.join(key)}", Sym(f"fate_conv([{args}]', t)"))
    edge_rate = [em.let(f"r{i}", r) if isinstance(r, Sym) else r for i, (_, _, r) in enumerate(net.edges)]
    states = {}
    for target in targets:
        total = 0.0
        for seq, eidx in paths.get(target, ()):
            coef = x0[seq[0]]
            for idx in eidx:
                coef = coef * edge_rate[idx]
            total = total + coef * conv_of[tuple(sorted(state_keys[s] for s in seq))]
        states[target] = em.let(f"s_{target}", total if isinstance(total, Sym) else Sym(_fmt(total)))
    if want_d_total:
        initial = 0.0
        for v in x0.values():
            initial = initial + v
        remaining = 0.0
        for s in xyz:
            remaining = remaining + states[s]
        states["D_total"] = em.let("s_D_total", initial - remaining)
    out = [assay_mod.assay_signal(states, a, o) for a, o in requests]
    body = "\n".join(em.lines)
    ret = ", ".join(_fmt(v) for v in out)
    return f"""  // expected signal (cells) for requests {requests}; route {route} {route_organ}, species {species}
  vector fate_signals(real t, real dose, real viab, real E_lung, real E_sys, real local_leak,
                      real kd, real krel, real kphi, real kfrag, real kmig, real kdig) {{
{body}
    return [{ret}]';
  }}
"""


def _conv_functions() -> str:
    d, order, tiny = convolution.DELTA, convolution.TAYLOR_ORDER, convolution._TINY
    return f"""  // (1 - exp(-p)) / p for p >= 0, series below {tiny!r} (convolution._e1)
  real fate_e1(real p) {{
    if (p < {tiny!r}) return 1.0 - p / 2.0 + p * p / 6.0;
    return -expm1(-p) / p;
  }}
  // sum_m (-1)^m h_m(0, gaps) / (m + k - 1)!, m = 0..{order} (convolution._taylor)
  real fate_taylor(vector gaps, int k) {{
    array[{order + 1}] real h = rep_array(0.0, {order + 1});
    real total = 0.0;
    h[1] = 1.0;
    for (g in 1:num_elements(gaps))
      for (m in 1:{order}) h[m + 1] = h[m + 1] + gaps[g] * h[m];
    for (m in 0:{order}) {{
      real fact = 1.0;
      for (q in 2:(m + k - 1)) fact *= q;
      total += ((m % 2 == 0 ? 1.0 : -1.0) / fact) * h[m + 1];
    }}
    return total;
  }}
  // convolution of exp(-rate_i t) over the given rates at time t (convolution.conv):
  // sorted rates, exp(-rate_min t) factored out, scaled divided differences level by level,
  // Taylor branch below span {d!r}
  real fate_conv(vector rates, real t) {{
    int n = num_elements(rates);
    if (n == 1) return exp(-rates[1] * t);
    vector[n] lam = sort_asc(rates);
    vector[n] mu;
    matrix[n, n] g;
    mu[1] = 0.0;
    for (i in 2:n) mu[i] = (lam[i] - lam[1]) * t;
    for (i in 1:(n - 1)) g[i, i + 1] = fate_e1(mu[i + 1] - mu[i]);
    for (level in 3:n) {{
      for (i in 1:(n - level + 1)) {{
        int j = i + level - 1;
        real span = mu[j] - mu[i];
        if (span < {d!r}) {{
          g[i, j] = fate_taylor(mu[(i + 1):j] - mu[i], level);
        }} else {{
          g[i, j] = (g[i, j - 1] - exp(-(mu[i + 1] - mu[i])) * g[i + 1, j]) / span;
        }}
      }}
    }}
    return exp(-lam[1] * t) * pow(t, n - 1) * g[1, n];
  }}
"""


def _extraction_function() -> str:
    nodes = ", ".join(repr(float(x)) for x in trapping._GH_NODES)
    weights = ", ".join(repr(float(x)) for x in trapping._GH_WEIGHTS)
    k = len(trapping._GH_NODES)
    return f"""  // per-pass trapping probability of a bed, averaged over the log-normal size distribution
  // (trapping.extraction: Gauss-Hermite, {k} nodes)
  real bed_extraction(real mean_um, real sd_um, real log_d50, real slope, real logit_offset) {{
    array[{k}] real nodes = {{{nodes}}};
    array[{k}] real weights = {{{weights}}};
    real cv2 = square(sd_um / mean_um);
    real sigma2 = log1p(cv2);
    real mu = log(mean_um) - sigma2 / 2.0;
    real sigma = sqrt(sigma2);
    real e = 0.0;
    for (q in 1:{k}) e += inv_logit(((mu + sigma * nodes[q]) - log_d50) / slope + logit_offset) * weights[q];
    return e;
  }}
"""


# ------------------------------------------------------------------------------------ priors


def _prior_lpdf(name: str, var: str, prior_name: str | None = None, priors=DEFAULT_PRIORS) -> str:
    p = priors[prior_name or name]
    q = p.params
    if p.dist == "lognormal":
        return f"lognormal_lpdf({var} | {math.log(q['median'])!r}, {float(q['sigma'])!r})"
    if p.dist == "normal":
        return f"normal_lpdf({var} | {float(q['mu'])!r}, {float(q['sigma'])!r})"
    if p.dist == "halfnormal":
        return f"normal_lpdf({var} | 0, {float(q['sigma'])!r}) + {math.log(2.0)!r}"
    if p.dist == "beta":
        return f"beta_lpdf({var} | {float(q['alpha'])!r}, {float(q['beta'])!r})"
    raise ValueError(p.dist)


# ------------------------------------------------------------------------------------ whole program


def stan_program(frame, parameterisation: dict, priors=DEFAULT_PRIORS) -> str:
    """The Stan program for this dataset (its request set and route) and the PyMC model's parameterisation."""
    d = prepare(frame)
    des = d["design"]
    groups = set(zip(des.route, des.route_organ, des.species))
    if len(groups) != 1:
        raise NotImplementedError(f"the benchmark generator handles one (route, route_organ, species) group, got {groups}")
    route, route_organ, species = next(iter(groups))
    if route == "local":
        raise NotImplementedError("local route (needs the local_leak parameter) is not generated")
    if np.isnan(d["viability"]).any():
        raise NotImplementedError("missing viability (needs viability_study) is not generated")
    if (d["measure"] == "detected").any():
        raise NotImplementedError("detected/not-detected rows are not generated (the benchmark data has none)")
    study_p, animal_p = parameterisation["study"], parameterisation["animal"]
    study_ext_p = parameterisation.get("study_extraction", study_p)
    signals = _signals_function(d["requests"], str(species), str(route), str(route_organ), des.target_flow_fraction)

    rate_names = ("krel", "kphi", "kfrag", "kmig", "kdig")
    params = [f"  real<lower=0> {k};" for k in rate_names]
    model = [f"  target += {_prior_lpdf(k, k, priors=priors)};" for k in rate_names]
    tp = []
    if parameterisation.get("lung_size", "direct") == "escape_logit":
        # model.size_parameters: ln d50 = c(slope) − slope·ℓ with ℓ | slope the conditional of the ln d50 prior
        q = priors["log_d50_lung"].params
        c = f"({trapping.escape_logit_offset(Sym('slope_lung')).code})"
        params += ["  real<lower=0> slope_lung;", "  real lung_escape_logit;"]
        model += [f"  target += {_prior_lpdf('slope_lung', 'slope_lung', priors=priors)};",
                  (f"  target += normal_lpdf(lung_escape_logit | ({c} - {float(q['mu'])!r}) / slope_lung, "
                   f"{float(q['sigma'])!r} / slope_lung);")]
        tp += [f"  real log_d50_lung = {c} - slope_lung * lung_escape_logit;"]
    else:
        params += ["  real log_d50_lung;", "  real<lower=0> slope_lung;"]
        model += [f"  target += {_prior_lpdf(k, k, priors=priors)};" for k in ("log_d50_lung", "slope_lung")]
    params += ["  real log_d50_systemic;", "  real<lower=0> slope_systemic;", "  real log_kd;"]
    model += [f"  target += {_prior_lpdf(k, k, priors=priors)};" for k in ("log_d50_systemic", "slope_systemic")]
    kd = priors["kd"].params
    model.append(f"  target += normal_lpdf(log_kd | {math.log(kd['median'])!r}, {float(kd['sigma'])!r});")
    if study_p == "none":
        tp += ["  vector[S] log_kd_study = rep_vector(log_kd, S);", "  vector[S] extraction_shift_study = rep_vector(0.0, S);"]
    else:
        params += ["  real<lower=0> sd_study_kd;", "  real<lower=0> sd_study_extraction;"]
        model += [f"  target += {_prior_lpdf('sd_study_kd', 'sd_study_kd', priors=priors)};",
                  f"  target += {_prior_lpdf('sd_study_extraction', 'sd_study_extraction', priors=priors)};"]
        for name, z, mu, sd, how in (("log_kd_study", "z_kd_study", "log_kd", "sd_study_kd", study_p),
                                     ("extraction_shift_study", "z_extraction_study", "0.0", "sd_study_extraction",
                                      study_ext_p)):
            if how == "centred":
                params += [f"  vector[S] {name};"]
                model += [f"  target += normal_lpdf({name} | {mu}, {sd});"]
            else:
                params += [f"  vector[S] {z};"]
                model += [f"  target += std_normal_lpdf({z});"]
                shift = "" if mu == "0.0" else f"{mu} + "
                tp += [f"  vector[S] {name} = {shift}{sd} * {z};"]
    params += ["  real<lower=0> sd_animal_kd;", "  real<lower=0> sd_animal_extraction;", "  real<lower=0> sd_animal_recovery;"]
    model += [f"  target += {_prior_lpdf(k, k, priors=priors)};" for k in
              ("sd_animal_kd", "sd_animal_extraction", "sd_animal_recovery")]
    if animal_p == "centred":
        params += ["  vector[A] log_kd_animal;", "  vector[A] extraction_shift_animal;", "  vector[A] log_recovery_animal;"]
        model += ["  target += normal_lpdf(log_kd_animal | log_kd_study[animal_study], sd_animal_kd);",
                  "  target += normal_lpdf(extraction_shift_animal | extraction_shift_study[animal_study], sd_animal_extraction);",
                  "  target += normal_lpdf(log_recovery_animal | 0.0, sd_animal_recovery);"]
    else:
        params += ["  vector[A] z_kd_animal;", "  vector[A] z_extraction_animal;", "  vector[A] z_recovery_animal;"]
        model += ["  target += std_normal_lpdf(z_kd_animal);", "  target += std_normal_lpdf(z_extraction_animal);",
                  "  target += std_normal_lpdf(z_recovery_animal);"]
        tp += ["  vector[A] log_kd_animal = log_kd_study[animal_study] + sd_animal_kd * z_kd_animal;",
               "  vector[A] extraction_shift_animal = extraction_shift_study[animal_study] + sd_animal_extraction * z_extraction_animal;",
               "  vector[A] log_recovery_animal = sd_animal_recovery * z_recovery_animal;"]
    params.append("  vector<lower=0>[K] sigma;")
    model.append(f"  target += normal_lpdf(sigma | 0, sigma_scale) + K * {math.log(2.0)!r};")
    n_req = len(d["requests"])
    return f"""// GENERATED by benchmarks/stan/generate.py from mscbayes' network, paths, trapping, assays and priors.
// Do not edit by hand. Parameterisation: study ln kd {study_p}, study extraction {study_ext_p}, animal {animal_p},
// lung size curve {parameterisation.get("lung_size", "direct")}.
functions {{
{_conv_functions()}
{_extraction_function()}
{signals}
}}
data {{
  int<lower=1> S;                       // studies
  int<lower=1> A;                       // animals
  int<lower=1> U;                       // (animal, time) units
  int<lower=1> N;                       // continuous observations
  int<lower=1> K;                       // assays
  array[A] int<lower=1, upper=S> animal_study;
  array[U] int<lower=1, upper=A> unit_animal;
  vector[U] time_h;
  vector[U] dose_unit;
  vector[U] diameter_mean_um;
  vector[U] diameter_sd_um;
  vector[U] viability;
  array[N] int<lower=1, upper=U> obs_unit;
  array[N] int<lower=1, upper={n_req}> obs_request;
  array[N] int<lower=1, upper=K> obs_assay;
  array[N] int<lower=0, upper=1> censored;
  array[N] int<lower=0, upper=1> truncated;   // fraction of the dose: log-normal truncated at 1
  vector[N] y;
  vector[N] log_lod;
  vector[N] dose_obs;
  vector[N] norm_obs;                          // dose for fractions, 1 for cells
  vector<lower=0>[K] sigma_scale;
}}
parameters {{
{chr(10).join(params)}
}}
transformed parameters {{
{chr(10).join(tp)}
}}
model {{
{chr(10).join(model)}
  {{
    vector[A] kd_animal = exp(log_kd_animal);
    vector[A] recovery = exp(log_recovery_animal);
    array[U] vector[{n_req}] signal;
    for (u in 1:U) {{
      int a = unit_animal[u];
      real E_lung = bed_extraction(diameter_mean_um[u], diameter_sd_um[u], log_d50_lung, slope_lung, extraction_shift_animal[a]);
      real E_sys = bed_extraction(diameter_mean_um[u], diameter_sd_um[u], log_d50_systemic, slope_systemic, 0.0);
      signal[u] = fate_signals(time_h[u], dose_unit[u], viability[u], E_lung, E_sys, 0.1,
                               kd_animal[a], krel, kphi, kfrag, kmig, kdig);
    }}
    for (n in 1:N) {{
      int u = obs_unit[n];
      real s = sigma[obs_assay[n]];
      real mean_cells = recovery[unit_animal[u]] * (signal[u][obs_request[n]] + {BACKGROUND_FRACTION!r} * dose_obs[n]);
      real m = log(mean_cells / norm_obs[n]);
      real lp;
      if (censored[n]) {{
        lp = std_normal_lcdf((log_lod[n] - m) / s);
      }} else {{
        real lv = log(y[n]);
        real z = (lv - m) / s;
        lp = -0.5 * square(z) - log(s) - {0.5 * math.log(2 * math.pi)!r} - lv;
      }}
      if (truncated[n]) lp -= std_normal_lcdf((0.0 - m) / s);
      target += lp;
    }}
  }}
}}
"""


def stan_data(frame) -> dict:
    """The data dict for the generated program (same preparation as mscbayes.model.prepare)."""
    from mscbayes.mechanisms.assays import ASSAY_INFO

    d = prepare(frame)
    cont = np.isin(d["measure"], ["fraction_of_dose", "cells"])
    if not cont.all():
        raise NotImplementedError("detected rows are not generated")
    frac = d["measure"] == "fraction_of_dose"
    lod = d["lod"]
    y = np.where(d["censored"], lod, d["value"])
    log_lod = np.log(np.where(np.isfinite(lod) & (lod > 0), lod, 1e-300))
    des = d["design"]
    unit_animal = d["unit_animal"]
    return dict(
        S=len(d["studies"]), A=len(d["animals"]), U=len(d["units"]), N=int(cont.sum()), K=len(d["assays"]),
        animal_study=(d["animal_study"] + 1).tolist(), unit_animal=(unit_animal + 1).tolist(),
        time_h=des.time_h.tolist(), dose_unit=des.dose_cells.tolist(),
        diameter_mean_um=des.diameter_mean_um.tolist(), diameter_sd_um=des.diameter_sd_um.tolist(),
        viability=d["viability"].tolist(),
        obs_unit=(d["obs_unit"] + 1).tolist(), obs_request=(d["obs_request"] + 1).tolist(),
        obs_assay=(d["obs_assay"] + 1).tolist(), censored=d["censored"].astype(int).tolist(),
        truncated=frac.astype(int).tolist(), y=y.tolist(), log_lod=log_lod.tolist(),
        dose_obs=d["dose"].tolist(), norm_obs=np.where(frac, d["dose"], 1.0).tolist(),
        sigma_scale=[ASSAY_INFO[a].noise_sd_prior for a in d["assays"]],
    )


if __name__ == "__main__":  # write the program for the benchmark dataset next to this file
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sampler_benchmark import benchmark_frame  # noqa: E402

    from mscbayes.families.fate.model import build_fate_model as build_model  # noqa: E402

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).with_name("fate_model.stan")))
    args = ap.parse_args()
    frame = benchmark_frame(args.scale)
    model = build_model(frame)
    Path(args.out).write_text(stan_program(frame, model.mscbayes_parameterisation))
    print(f"wrote {args.out}")

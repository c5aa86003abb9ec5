"""The course's samplers by name, in one registry (notebooks 07-10, the command line, the widgets, the
evaluation), and sampling many images in batches with any of them. Reachable as ``sg.samplers.<name>``.

``SAMPLERS`` maps each name to a ``Sampler``: its function, default steps and score evaluations (NFE) per
sample as a function of the steps. The command line's ``--sampler`` choices, the widgets' solver lists and the
manifests' sampler labels (``sampler_label``) all read it. A model carries its trained noise range
[t_min, 1] (``sg.checkpoints.ScoreModel``); ``sample_batched`` reads it from the model, and every sampler
stops at ``end_time(t_min)``, never below the levels the network was trained on."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from .. import validate
from .fast import dpm_solver_2m, edm_sampler
from .flow import flow_euler_sampler, flow_heun_sampler
from .solvers import euler_maruyama, predictor_corrector, probability_flow_ode

__all__ = ["seconds_per_evaluation", "Sampler", "SAMPLERS", "SIGMA_SOLVERS", "T_END", "end_time", "end_sigma", "sampler_for",
           "sampler_label", "model_parts", "sample_batched"]


@torch.no_grad()
def seconds_per_evaluation(score_fn, shape, *, device=None, repeats: int = 2) -> float:
    """Wall-clock seconds of one call ``score_fn(x, t)`` on a batch of ``shape`` (the median of ``repeats``
    after one warm-up call): multiplied by a sampler's NFE, the time a cell will take, which notebooks
    print before a long comparison (notebooks 08-10)."""
    from ..runtime import device as default_device

    device = torch.device(device) if device is not None else default_device()
    x = torch.zeros(tuple(shape), device=device)
    t = torch.full((x.shape[0],), 0.5, device=device)
    score_fn(x, t)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        score_fn(x, t)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@dataclass(frozen=True)
class Sampler:
    """One entry of ``SAMPLERS``. ``name``: what ``sample_batched(sampler=...)`` and ``--sampler`` take;
    ``label``: how tables and manifests name it (``sampler_label``); ``function``: the sampler itself;
    ``default_steps``: steps (noise levels for the samplers in sigma) when none are given, None for the adaptive
    ODE; ``nfe(n_steps, solver)``: score evaluations per sample, None where the solver adapts its steps (then
    counted as it runs); ``keywords``: the ``sample_batched`` keywords it takes besides the steps; ``in_sigma``:
    a sampler in the noise level sigma (notebook 08), whose end is the schedule's last level sigma(t_end);
    ``solvers``: its solver variants (the first is the default); ``stepwise``: ``sg.samplers.reverse_step`` takes
    it (inpainting); ``summary``: one line for the command line's help."""

    name: str
    label: str
    function: Callable
    default_steps: int | None
    nfe: Callable[[int, str | None], int] | None
    keywords: tuple = ()
    in_sigma: bool = False
    solvers: tuple = ()
    stepwise: bool = False
    summary: str = ""

    def evaluations(self, n_steps: int | None = None, solver: str | None = None) -> int | None:
        """Score evaluations per sample for ``n_steps`` (default: ``default_steps``) and ``solver`` (default: the
        first of ``solvers``); None for an adaptive solver."""
        if self.nfe is None:
            return None
        if solver is not None and solver not in (self.solvers or (self.name,)):
            raise ValueError(f"solver={solver!r} is not a solver of sampler {self.name!r}; choose one of "
                             f"{list(self.solvers or (self.name,))}.")
        steps = self.default_steps if n_steps is None else validate.count("n_steps", n_steps)
        return self.nfe(steps, solver or (self.solvers[0] if self.solvers else None))


#: The course's samplers by name (notebooks 06-08): the reverse SDE (Euler-Maruyama, predictor-corrector), the
#: probability-flow ODE (RK45) and the samplers in sigma (EDM's Heun: 2 N - 1 evaluations, the last step Euler;
#: DPM-Solver++(2M): N).
SAMPLERS = {s.name: s for s in (
    Sampler("em", "EM", euler_maruyama, 500, lambda n, solver=None: n, stepwise=True,
            summary="Euler-Maruyama on the reverse SDE, eq. (7)"),
    Sampler("pc", "PC", predictor_corrector, 500, lambda n, solver=None: 2 * n, ("snr",), stepwise=True,
            summary="predictor-corrector: one Langevin corrector, then Euler-Maruyama"),
    Sampler("ode", "ODE", probability_flow_ode, None, None, ("rtol", "atol"),
            summary="the probability-flow ODE with adaptive RK45"),
    Sampler("edm", "Heun", edm_sampler, 18, lambda n, solver="heun": 2 * n - 1 if solver == "heun" else n,
            ("rho", "churn", "s_tmin", "s_tmax", "s_noise"), in_sigma=True, solvers=("heun", "euler"),
            summary="EDM's sampler in sigma, Heun (Karras et al. 2022), with optional churn"),
    Sampler("dpm", "DPM-2M", dpm_solver_2m, 20, lambda n, solver=None: n, ("rho",), in_sigma=True,
            summary="DPM-Solver++(2M) in sigma (Lu et al. 2022)"),
    Sampler("flow-euler", "Flow-Euler", flow_euler_sampler, 20, lambda n, solver=None: n,
            summary="the model as a flow on the straight path, Euler in u = sigma/(1+sigma) (notebook 11)"),
    Sampler("flow-heun", "Flow-Heun", flow_heun_sampler, 10, lambda n, solver=None: 2 * n - 1,
            summary="the model as a flow on the straight path, Heun in u = sigma/(1+sigma) (notebook 11)"),
)}

#: The solvers of the samplers in sigma, as the fast-sampling widget lists them: ("heun", "euler", "dpm").
SIGMA_SOLVERS = tuple(solver for s in SAMPLERS.values() if s.in_sigma for solver in (s.solvers or (s.name,)))

#: Where the samplers stop, in time, when the network's trained range allows it: t = 1e-3, the sampling end of
#: Song et al. 2021 (notebooks 06-08); the EDM and DPM schedules end at sigma(T_END).
T_END = 1e-3


def end_time(t_min: float | None = None) -> float:
    """The time a sampler stops at for a network trained on t in [``t_min``, 1]: ``T_END``, or ``t_min`` where the
    network never saw ``T_END`` (a network is never asked about noise levels below its training range). None (a
    bare score function with no trained range): ``T_END``."""
    if t_min is None:
        return T_END
    return max(T_END, validate.eps(t_min))


def end_sigma(sde, t_min: float | None = None) -> float:
    """The last level of a schedule in sigma for a network trained on [``t_min``, 1]: the noise level at
    ``end_time(t_min)`` (float64, then a float), where the EDM and DPM samplers' schedules end."""
    return float(sde.sigma_of_t(torch.tensor(end_time(t_min), dtype=torch.float64)))


def sampler_for(solver: str) -> Sampler:
    """The registry entry of a sampler name or a solver variant ("heun" and "euler" are EDM's)."""
    for s in SAMPLERS.values():
        if solver == s.name or solver in s.solvers:
            return s
    raise ValueError(f"solver={solver!r} is invalid: choose a sampler {sorted(SAMPLERS)} or a solver "
                     f"{list(SIGMA_SOLVERS)}.")


def sampler_label(sampler: str, n_steps: int | None = None, *, churn: float = 0.0, **_) -> str:
    """How tables and manifests name a sampler setting: "EM-500", "Heun-18", "Heun-18 churn 40", "ODE"
    (the keywords of ``sample_batched``; others are ignored)."""
    s = SAMPLERS[validate.choice("sampler", sampler, SAMPLERS)]
    steps = None if s.default_steps is None else (s.default_steps if n_steps is None else n_steps)
    return s.label + (f"-{steps}" if steps is not None else "") + (f" churn {churn:g}" if churn else "")


def model_parts(model, sde=None, t_min: float | None = None):
    """(score function, sde, t_min) of what a sampler was handed: a model that carries its trained range
    (``sg.checkpoints.ScoreModel``: its ``net``, ``sde`` and ``t_min``, unless given here), or a bare score
    function ``(x, t) -> score`` with ``sde`` (its ``t_min`` None unless given). A ``t_min`` below the model's own
    is refused: the network never saw those noise levels."""
    if hasattr(model, "t_min") and hasattr(model, "net"):
        sde = model.sde if sde is None else sde
        if t_min is not None and t_min < model.t_min:
            raise ValueError(f"t_min={t_min!r} is below the noise range the model was trained on, [{model.t_min:g}, 1]; "
                             f"leave t_min=None to use the model's.")
        t_min = model.t_min if t_min is None else t_min
        model = model.net
    if sde is None:
        raise ValueError("sde is None: pass the SDE the score function was trained with, or a model that carries "
                         "it (sg.mnist.pretrained(...), sg.checkpoints.ScoreModel.load(path)).")
    return model, sde, t_min


def sample_batched(score_fn, sde, n: int, shape=(1, 28, 28), *, sampler: str = "em", n_steps: int | None = None,
                   t_min: float | None = None, snr: float = 0.16, rtol: float = 1e-5, atol: float = 1e-5,
                   rho: float = 7.0, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                   s_noise: float = 1.0, batch_size: int | None = None, amp: bool = True, compile: bool = False,
                   generator: torch.Generator | None = None, device=None, progress: bool = False,
                   timings: dict | None = None, log=None):
    """Draw ``n`` samples of shape ``shape`` with ``sampler`` of ``SAMPLERS``, ``batch_size`` at a time: "em"
    (``euler_maruyama``, ``n_steps`` evaluations), "pc" (``predictor_corrector``, 2 ``n_steps``), "ode"
    (``probability_flow_ode`` at ``rtol``/``atol``), "edm" (``edm_sampler`` with Heun on ``n_steps`` levels,
    ``rho``, ``churn`` and its window ``s_tmin``, ``s_tmax`` and ``s_noise``: 2 ``n_steps`` - 1) or "dpm"
    (``dpm_solver_2m``, ``n_steps``, ``rho``). ``n_steps`` None: the sampler's ``default_steps``.

    ``score_fn``: a model that carries its trained noise range (``sg.checkpoints.ScoreModel``; ``sde`` may then be
    None), or a score function ``(x, t) -> score`` for ``sde``. ``t_min``: the bottom of the range the network
    was trained on, [t_min, 1] (default: the model's, never below it; None for a bare function): the samplers stop
    at ``end_time(t_min)`` (t = 1e-3 unless the network never saw it), the schedules in sigma end at its sigma.

    With ``amp`` the score network runs in the precision ``sg.precision(device)`` picks (bfloat16
    autocast on Ampere and newer GPUs, float16 on older ones, float32 on MPS and the CPU; the
    sampler's state stays float32); with ``compile`` it is wrapped in ``torch.compile`` and compiled once on a batch of
    the right shape before the clock starts (the compile time goes to ``timings["compile_seconds"]``).
    ``log`` (e.g. ``print``) is told the precision chosen; ``timings["precision"]`` records it.
    Returns (samples (n, *shape) on the CPU, score evaluations per sample, sampling seconds).
    Introduced in notebooks/07_mnist_score_sde.ipynb.
    """
    from ..runtime import device as default_device
    from ..runtime import precision

    score_fn, sde, t_min = model_parts(score_fn, sde, t_min)
    spec = SAMPLERS[validate.choice("sampler", sampler, SAMPLERS)]
    n = validate.count("n", n)
    n_steps = spec.default_steps if n_steps is None or spec.default_steps is None else n_steps
    t_end = end_time(t_min)
    if churn and "churn" not in spec.keywords:   # the samplers check their own schedule at their first call
        raise ValueError(f"churn={churn!r} is EDM's S_churn and applies to sampler='edm' only; "
                         f"sampler={sampler!r} would ignore it (pass churn=0).")
    if (s_tmin, s_tmax, s_noise) != (0.0, float("inf"), 1.0) and "s_tmin" not in spec.keywords:
        raise ValueError(f"s_tmin, s_tmax and s_noise are EDM's churn window and noise and apply to sampler='edm' "
                         f"only; sampler={sampler!r} would ignore them (leave them at 0, inf and 1).")
    options = dict(snr=snr, rtol=rtol, atol=atol, rho=rho, churn=churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)
    kw = {k: options[k] for k in spec.keywords}
    if spec.in_sigma:
        kw["sigma_min"] = end_sigma(sde, t_min)
    else:
        kw["eps"] = t_end
    device = torch.device(device) if device is not None else default_device()
    batch_size = batch_size or n
    amp_dtype, why = precision(device) if amp else (torch.float32, "fp32 (amp=False)")
    use_amp = amp_dtype != torch.float32
    if log is not None:
        log(f"sampling precision: {why}")
    if timings is not None:
        timings["precision"] = why
    net = score_fn
    compile_start = time.perf_counter()
    if compile and device.type == "cuda" and hasattr(torch, "compile"):
        net = torch.compile(score_fn)
        with torch.no_grad():
            sizes = {min(batch_size, n - i) for i in range(0, n, batch_size)}
            for size in sizes:  # compile for every batch shape the loop will use
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    net(torch.zeros((size,) + tuple(shape), device=device), torch.full((size,), 0.5, device=device))
        torch.cuda.synchronize()
    if timings is not None:
        timings["compile_seconds"] = time.perf_counter() - compile_start

    def score(x, t):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            return net(x, t).float()

    out, nfe = [], 0
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        shape_i = (min(batch_size, n - i),) + tuple(shape)
        if n_steps is None:   # the adaptive ODE: no steps, no progress bar
            result = spec.function(sde, score, shape_i, generator=generator, device=device, **kw)
        else:
            result = spec.function(sde, score, shape_i, n_steps, generator=generator, device=device,
                                   progress=progress, **kw)
        x, nfe = result if isinstance(result, tuple) else (result, spec.evaluations(n_steps))
        out.append(x.float().cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out), nfe, time.perf_counter() - start

"""Sampling many images in batches with any sampler of the course by name (notebooks 07-10, the command line
and the widgets). Reachable as ``sg.samplers.<name>``."""
from __future__ import annotations
import time
import torch
from .. import validate
from .fast import dpm_solver_2m, edm_sampler
from .solvers import euler_maruyama, predictor_corrector, probability_flow_ode

__all__ = ["seconds_per_evaluation", "SAMPLERS", "sample_batched"]


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


#: The samplers ``sample_batched`` (and the command line's ``--sampler``) accept.
SAMPLERS = ("em", "pc", "ode", "edm", "dpm")


def sample_batched(score_fn, sde, n: int, shape=(1, 28, 28), *, sampler: str = "em", n_steps: int = 500,
                   snr: float = 0.16, rtol: float = 1e-5, atol: float = 1e-5, rho: float = 7.0, churn: float = 0.0,
                   s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                   batch_size: int | None = None, amp: bool = True, compile: bool = False, generator: torch.Generator | None = None, device=None,
                   progress: bool = False, timings: dict | None = None, log=None):
    """Draw ``n`` samples of shape ``shape`` with ``sampler``, ``batch_size`` at a time: "em"
    (``euler_maruyama``, ``n_steps`` evaluations), "pc" (``predictor_corrector``, 2 ``n_steps``), "ode"
    (``probability_flow_ode`` at ``rtol``/``atol``), "edm" (``edm_sampler`` with Heun on ``n_steps`` levels,
    ``rho``, ``churn`` and its window ``s_tmin``, ``s_tmax`` and ``s_noise``: 2 ``n_steps`` - 1) or "dpm"
    (``dpm_solver_2m``, ``n_steps``, ``rho``).

    With ``amp`` the score network runs in the precision ``sg.precision(device)`` picks (bfloat16
    autocast on Ampere and newer GPUs, float16 on older ones, float32 on MPS and the CPU; the
    sampler's state stays float32); with ``compile`` it is wrapped in ``torch.compile`` and compiled once on a batch of
    the right shape before the clock starts (the compile time goes to ``timings["compile_seconds"]``).
    ``log`` (e.g. ``print``) is told the precision chosen; ``timings["precision"]`` records it.
    Returns (samples (n, *shape) on the CPU, score evaluations per sample, sampling seconds).
    Introduced in notebooks/07_mnist_score_sde.ipynb.
    """
    from ..runtime import device as default_device, precision

    validate.choice("sampler", sampler, SAMPLERS)
    n = validate.count("n", n)
    if churn and sampler != "edm":   # the samplers check their own schedule at their first call, before any work
        raise ValueError(f"churn={churn!r} is EDM's S_churn and applies to sampler='edm' only; "
                         f"sampler={sampler!r} would ignore it (pass churn=0).")
    if (s_tmin, s_tmax, s_noise) != (0.0, float("inf"), 1.0) and sampler != "edm":
        raise ValueError(f"s_tmin, s_tmax and s_noise are EDM's churn window and noise and apply to sampler='edm' "
                         f"only; sampler={sampler!r} would ignore them (leave them at 0, inf and 1).")
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
        if sampler == "em":
            x, nfe = euler_maruyama(sde, score, shape_i, n_steps, generator=generator, device=device,
                                    progress=progress), n_steps
        elif sampler == "pc":
            x, nfe = predictor_corrector(sde, score, shape_i, n_steps, snr=snr, generator=generator, device=device,
                                         progress=progress), 2 * n_steps
        elif sampler == "edm":
            x, nfe = edm_sampler(sde, score, shape_i, n_steps, rho=rho, churn=churn, s_tmin=s_tmin, s_tmax=s_tmax,
                                 s_noise=s_noise, generator=generator, device=device, progress=progress)
        elif sampler == "dpm":
            x, nfe = dpm_solver_2m(sde, score, shape_i, n_steps, rho=rho, generator=generator, device=device,
                                   progress=progress)
        else:
            x, nfe = probability_flow_ode(sde, score, shape_i, rtol=rtol, atol=atol, generator=generator, device=device)
        out.append(x.float().cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out), nfe, time.perf_counter() - start

"""The course's notation sheet: one meaning per symbol across notebooks 01-11, the package and its widgets.

``SYMBOLS`` is the source; ``markdown_table()`` renders it into the README's "Notation" section
(``python -m scoregen_lite.courseware.results readme``) and the website's ``notation.html`` (``sg.site.build_site``);
every notebook's first cell links to it (``NOTATION_LINK``). The numbered equations (1)-(8) are the
course notes' and keep their symbols; where a paper writes a symbol differently, the "elsewhere" column
says so once.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Symbol", "SYMBOLS", "ABBREVIATIONS", "NOTATION_LINK", "markdown_table", "abbreviations_table"]

#: The link every notebook's header carries (the site rewrites it to ``notation.html``).
NOTATION_LINK = "../README.md#notation"


@dataclass(frozen=True)
class Symbol:
    """One row of the notation sheet."""

    symbol: str      # LaTeX, without dollars
    meaning: str     # markdown; may contain $...$
    first: str       # the notebook that introduces it, "01".."11"
    code: str        # the package's name for it (markdown, usually `code`)
    elsewhere: str = ""   # what a paper calls it, where that differs


SYMBOLS = [
    Symbol(r"x \in \mathbb R^D,\ D", "a data point and the data's dimension ($D = 2$ in notebooks 01-06, 784 for MNIST)",
           "01", "`x`, `dim`"),
    Symbol(r"p_{\text{data}},\ p", "the data density (in 01-06 a Gaussian mixture, so every score below is exact)", "01",
           "`sg.densities.GaussianMixture`"),
    Symbol(r"\nabla_x \log p(x)", "the score of $p$", "01", "`p.score(x)`"),
    Symbol(r"z", r"a standard normal draw, $z \sim \mathcal N(0, I)$", "01", "`torch.randn`"),
    Symbol(r"\epsilon", "the Langevin step size of eq. (1)", "01", "`step_size`",
           r"the NCSN code writes $x + a s + \sqrt{2a} z$: its step $a$ is $\epsilon/2$"),
    Symbol(r"T", "the number of Langevin steps (per noise level in 05)", "01", "`n_steps`, `n_steps_each`",
           "Song et al. (2021) let SDE time run to $T$; here SDE time always ends at 1"),
    Symbol(r"s_\theta(x),\ s_\theta(x, \sigma),\ s_\theta(x, t)", "a score network: unconditional (02-03), "
           "conditioned on the noise level (04-05) or on the SDE time (06-10)", "02", "`net(x)`, `net(x, sigma)`, `net(x, t)`"),
    Symbol(r"\sigma", r"the std of Gaussian noise added to clean data: $\tilde x = x + \sigma z$", "03", "`sigma`"),
    Symbol(r"q_\sigma", r"the perturbed density $p_{\text{data}} \ast \mathcal N(0, \sigma^2 I)$ of $\tilde x$", "03",
           "`p.perturbed_score(x, sigma)`", r"EDM (Karras et al. 2022) writes $p(x; \sigma)$"),
    Symbol(r"\sigma_1 > \dots > \sigma_L,\ L,\ i", "the NCSN ladder of noise levels, largest first, indexed $i = 1..L$",
           "04", "`sigmas`, `sg.schedules.geometric_sigmas`"),
    Symbol(r"\gamma", r"the ladder's ratio $\sigma_{i-1}/\sigma_i$", "04", "`ratio`, `sg.schedules.ratio_for_dimension`",
           "Song & Ermon (2020, technique 2) write $\\gamma$ too"),
    Symbol(r"\lambda(\sigma),\ \lambda(t)", "the weight of each noise level in the loss, eqs. (5) and (8)", "04",
           "`weighting`"),
    Symbol(r"\epsilon_i = \epsilon\,\sigma_i^2/\sigma_L^2", "the annealed Langevin step at level $i$", "05",
           "`sg.schedules.step_sizes`", r"Song & Ermon (2019, algorithm 1) write $\alpha_i$ for $\epsilon_i$; their "
           r"code's step $a$ in $x + a s + \sqrt{2a} z$ is $\epsilon_i/2$"),
    Symbol(r"r", r"the update's signal-to-noise ratio $\lVert \tfrac{\epsilon}{2} s\rVert / \lVert \sqrt{\epsilon} z\rVert$, "
           r"which $\epsilon_i \propto \sigma_i^2$ keeps constant nominally, where $\lVert s\rVert \approx \sqrt D/\sigma_i$ "
           r"(05 measures where that fails), and which the predictor-corrector's Langevin step targets (06)", "05",
           "`sg.schedules.update_snr`, `snr`", "Song et al. (2021, appendix G) call it snr (0.16 for MNIST-like data)"),
    Symbol(r"t \in [t_{\min}, 1]", "SDE time: data at $t = 0$, the prior at $t = 1$; samplers and training stop at the "
           r"smallest time $t_{\min}$", "06", "`t`, `eps`", r"Song et al. (2021) write $\epsilon$ for $t_{\min}$"),
    Symbol(r"f(x, t),\ g(t)", "the drift and the diffusion coefficient of eq. (6)", "06", "`sde.drift`, `sde.diffusion`"),
    Symbol(r"w,\ \bar w", r"a standard Wiener process; $\bar w$ runs backwards in time: in eq. (7) with $dt < 0$, "
           r"$g\,d\bar w$ is drawn as $g\sqrt{\lvert dt\rvert}\,z$", "06", "(the `z` of `sg.solvers.euler_maruyama`)"),
    Symbol(r"p_t", r"the density of $x(t)$; $p_0 = p_{\text{data}}$, and for the VE SDE $p_t = q_{\sigma_t}$", "06",
           "`sg.densities.SDEMarginal`"),
    Symbol(r"p_{0t}(x(t) \mid x(0)) = \mathcal N(\alpha_t x(0), \sigma_t^2 I)", "the transition kernel of eq. (8)", "06",
           "`sde.marginal_prob`, `sde.perturb`"),
    Symbol(r"\alpha_t,\ \sigma_t", "the kernel's mean scale and std ($\\alpha_t = 1$ for the VE SDE)", "06",
           "`sde.marginal_coeffs(t)`, `sde.marginal_std(t)`", "EDM writes $s(t)$ for $\\alpha_t$"),
    Symbol(r"\sigma(t)", r"the VE SDE's noise function $\sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t$, with "
           r"$g = \sqrt{d\sigma^2(t)/dt}$; its kernel std is $\sigma_t = \sqrt{\sigma(t)^2 - \sigma_{\min}^2}$, "
           r"smaller at small $t$", "06", "`sg.sde.VESDE(sigma_min, sigma_max).sigma(t)`"),
    Symbol(r"b", r"the base of Song's tutorial SDE $dx = b^t\,dw$ ($b = 25$): the VE SDE with "
           r"$\sigma_{\min} = 1/\sqrt{2\ln b}$ and $\sigma_{\max} = b\,\sigma_{\min}$", "07",
           "`sg.sde.VESDE.tutorial(25.0)`, `sde_sigma`", "the tutorial calls it sigma"),
    Symbol(r"\beta(t)", "the VP and sub-VP SDEs' noise rate", "06", "`sde.beta(t)`"),
    Symbol(r"\sigma = \sigma_t/\alpha_t", r"the noise level of time $t$: $x(t)/\alpha_t$ is clean data plus noise of std "
           r"$\sigma$ (so its density is $q_\sigma$); $t(\sigma)$ is its inverse", "08",
           "`sde.sigma_of_t(t)`, `sde.t_of_sigma(sigma)`", "EDM's $\\sigma(t)$"),
    Symbol(r"\hat x_0(x; \sigma)", r"the denoiser $\mathbb E[x(0) \mid x]$ of Tweedie's formula, "
           r"$x + \sigma^2 \nabla_x \log q_\sigma(x)$", "08", "`sg.sde.denoiser(sde, score_fn)`",
           "EDM writes $D(x; \\sigma)$"),
    Symbol(r"\sigma_0 > \dots > \sigma_N = 0,\ N", "a sampler's noise levels, indexed $i = 0..N$ as in EDM's eq. (5) "
           "(NCSN's ladder is indexed $1..L$)", "08", "`sg.schedules.karras_sigmas`, `n_steps`"),
    Symbol(r"\sigma_0,\ \sigma_{N-1}", "a sampler schedule's first and last non-zero levels; the code's and the sliders' "
           "`sigma_max`, `sigma_min` of a schedule mean these (not the VE parameters of $\\sigma(t)$)", "08",
           "`sg.schedules.karras_sigmas(sigma_max, sigma_min, n_steps)`"),
    Symbol(r"\rho", "the Karras schedule's exponent (larger: more steps at small $\\sigma$)", "08", "`rho`"),
    Symbol(r"S_{\text{churn}},\ \eta_i", r"EDM's stochasticity: step $i$ first raises $\sigma_i$ to "
           r"$\hat\sigma_i = \min((1 + \eta_i)\sigma_i, \sigma_0)$ with fresh noise, $\eta_i = \min(S_{\text{churn}}/N, "
           r"\sqrt 2 - 1)$ for $\sigma_i$ in $[S_{t\min}, S_{t\max}]$ and 0 outside; `churn=40` on 18 levels sits at the "
           r"cap at every level (the course's capped churn)", "08",
           "`churn`", "EDM's algorithm 2 writes $\\gamma_i$ for $\\eta_i$"),
    Symbol(r"y", "a class label (0-9)", "09", "`y`, `label`"),
    Symbol(r"\kappa", r"the guidance scale: $s_u + \kappa\,(s_c - s_u)$ for classifier-free guidance, "
           r"$s + \kappa \nabla_x \log p_t(y \mid x)$ for classifier guidance", "09", "`scale`, `guidance`",
           r"Ho & Salimans (2022) write $w = \kappa - 1$; Dhariwal & Nichol (2021) write $s = \kappa$"),
    Symbol(r"c_{\text{skip}}, c_{\text{out}}, c_{\text{in}}, c_{\text{noise}},\ F_\theta",
           r"EDM's preconditioning: the raw network $F_\theta$ and the coefficients that make "
           r"$\hat x_0 = c_{\text{skip}} \hat x + c_{\text{out}} F_\theta(c_{\text{in}} \hat x, c_{\text{noise}})$", "10",
           "`sg.recipes.Preconditioned`, `sg.recipes.coefficients`", "EDM section 5, table 1"),
    Symbol(r"\hat x = x(t)/\alpha_t", "the scaled state, clean data plus noise of std $\\sigma$", "08",
           "(inside `sg.sde.denoiser`)"),
    Symbol(r"\sigma_{\text{data}}", "the std of the data that EDM's preconditioning assumes", "10", "`sigma_data`",
           "EDM's 0.5 is for images in $[-1, 1]$; the course's MNIST lies in $[0, 1]$"),
    Symbol(r"P_{\text{mean}},\ P_{\text{std}}", r"EDM's log-normal training noise levels, "
           r"$\ln\sigma \sim \mathcal N(P_{\text{mean}}, P_{\text{std}}^2)$", "10", "`p_mean`, `p_std`",
           r"EDM's $-1.2$ and $1.2$ are for images in $[-1, 1]$ (section 5)"),
    Symbol(r"\sigma_{t_{\min}}", r"the kernel std at the smallest time $t_{\min}$: the smallest noise level a model "
           r"trained on (not the VE parameter $\sigma_{\min}$ of $\sigma(t)$)", "07", "`sde.marginal_std(eps)`"),
    Symbol(r"x_t = (1-t)\,x(0) + t\,z", r"the straight path of flow matching and rectified flow, the data $x(0)$ at $t = 0$ "
           r"and the noise $z$ at $t = 1$ (the direction of the SDEs' time); its density is $p_t$", "11",
           "`sg.flow.straight_path(x0, z, t)`, `sg.flow.marginal(target, t)`",
           r"Lipman et al. (2023) and MIT 6.S184 run time the other way (noise at 0, data at 1): their $t$ is our "
           r"$1 - t$; Esser et al. (2024) run it as here"),
    Symbol(r"v_t(x)", r"the marginal velocity $\mathbb E[z - x(0) \mid x_t = x]$ of the straight path (the conditional "
           r"velocity of one path is $z - x(0)$); samplers solve $dx/dt = v_t(x)$ from $t = 1$ down to 0; a network "
           r"for it is $v_\theta(x, t)$", "11", "`sg.flow.marginal_velocity(target, x, t)`, `velocity_fn(x, t)`",
           r"Lipman et al. (2023) and MIT 6.S184 write $u_t$ for it (their network: $v_t(x; \theta)$, "
           r"$u_t^\theta$); in their time direction it is $-v_t$"),
    Symbol(r"\mathcal L_{\text{CFM}}", r"the conditional flow matching loss "
           r"$\mathbb E\,\lVert v_\theta(x_t, t) - (z - x(0))\rVert^2$, $t \sim U(0, 1)$", "11", "`sg.flow.cfm_loss(net, x0)`",
           "Lipman et al. (2023), eq. (9)"),
    Symbol(r"u = \sigma/(1+\sigma)", r"the straight path's time of the noise level $\sigma$: "
           r"$(x(0) + \sigma z)/(1 + \sigma) = x_u$ (notebook 11 writes $t$ where no SDE time is around)", "11",
           "`sg.flow.flow_time(sigma)`, `sg.flow.velocity_of_sde_model`; `sg.recipes`' \"straight\" and \"flow\"",
           r"Esser et al. (2024, section 3.1) draw it logit-normal"),
]

#: Abbreviations and named methods used across the course, with the first notebook whose text uses each
#: (``tests/test_notation.py`` checks that no earlier notebook does).
ABBREVIATIONS = [
    ("DSM", "denoising score matching, eq. (3) (Vincent 2011)", "03"),
    ("NCSN", "noise-conditional score network (Song & Ermon 2019)", "04"),
    ("MALA", "Metropolis-adjusted Langevin algorithm: eq. (1) plus an accept/reject step", "01"),
    ("VE, VP, sub-VP", "variance-exploding, variance-preserving and sub-VP SDEs (Song et al. 2021, section 3.4)", "06"),
    ("DDPM", "denoising diffusion probabilistic models (Ho et al. 2020): a discrete chain of Gaussian noising steps "
             "whose continuous-time limit is the VP SDE (Song et al. 2021, section 3.4)", "06"),
    ("EM", "Euler-Maruyama, the first-order solver of eq. (7)", "06"),
    ("PC", "predictor-corrector (Song et al. 2021, section 4.2): EM steps of eq. (7) (the predictor) interleaved "
           "with Langevin steps at fixed time (the corrector); the package, like Song et al.'s code, takes the "
           "corrector at the current time, then the predictor to the next (the paper's algorithms 2-3 write the "
           "predictor first)", "06"),
    ("ODE", "the probability-flow ODE $dx = [f - \\tfrac12 g^2 \\nabla_x \\log p_t]\\,dt$, deterministic, same marginals "
            "$p_t$ as eq. (7)", "06"),
    ("NFE", "number of function (score network) evaluations of a sampler", "06"),
    ("EMA", "exponential moving average of the weights", "02"),
    ("FD", "Fréchet distance between the features of two sets of digits (the package's classifier)", "07"),
    ("EDM", "Karras et al. (2022), *Elucidating the design space of diffusion-based generative models*: its training "
            "recipe is notebook 10's, its samplers notebook 08's", "07"),
    ("CFG", "classifier-free guidance (Ho & Salimans 2022)", "09"),
    ("Tweedie's formula", "the denoiser from the score: $\\mathbb E[x(0) \\mid x] = x + \\sigma^2 \\nabla_x \\log q_\\sigma(x)$ "
                          "(Efron 2011), the optimum of eq. (3)", "03"),
    ("energy distance", "$2\\,\\mathbb E\\lVert X-Y\\rVert - \\mathbb E\\lVert X-X'\\rVert - \\mathbb E\\lVert Y-Y'\\rVert$ "
                        "between the distributions of X and Y, zero only when they are equal, estimated from two "
                        "sets of points (Székely & Rizzo 2013); the course's 2D sampler metric", "05"),
    ("RK45", "the adaptive Runge-Kutta (Dormand-Prince) 4(5) ODE solver, `sg.samplers.rk45`", "06"),
    ("bits/dim", "the negative log-likelihood of a digit in bits, divided by its 784 pixels (Song et al. 2021, "
                 "appendix D.2)", "07"),
    ("Heun", "EDM's second-order ODE sampler in $\\sigma$ (Karras et al. 2022, Algorithm 1), built in notebook 08", "07"),
    ("DDIM", "denoising diffusion implicit models (Song, Meng & Ermon 2021): the first-order ODE step in $\\sigma$ "
             "through the denoiser", "08"),
    ("DPM-Solver++(2M)", "Lu et al. (2022)'s second-order multistep ODE solver, `sg.samplers.dpm_solver_2m`", "08"),
    ("flow matching", "learning the velocity of a chosen path from data to noise by regression (Lipman et al. 2023)", "11"),
    ("CFM", "conditional flow matching: the regression on the velocity $z - x(0)$ of single paths, "
            "$\\mathcal L_{\\text{CFM}}$", "11"),
    ("rectified flow", "flow matching on the straight path; one **reflow** step retrains it on the pairs (noise, the "
                       "flow's own sample) to straighten its paths (Liu, Gong & Liu 2023, section 2.3)", "11"),
]


def markdown_table() -> str:
    """The notation sheet as a markdown table (symbol, meaning, first notebook, code, other names)."""
    lines = ["| symbol | meaning | first in | in the package | elsewhere |", "| --- | --- | --- | --- | --- |"]
    for s in sorted(SYMBOLS, key=lambda s: s.first):   # stable: within a notebook, in the order above
        lines.append(f"| ${s.symbol}$ | {s.meaning} | {s.first} | {s.code} | {s.elsewhere} |")
    return "\n".join(lines) + "\n"


def abbreviations_table() -> str:
    """The abbreviations and named methods as a markdown table."""
    lines = ["| abbreviation or method | meaning | first in |", "| --- | --- | --- |"]
    lines += [f"| {a} | {m} | {n} |" for a, m, n in ABBREVIATIONS]
    return "\n".join(lines) + "\n"


def sheet() -> str:
    """Both tables, as the README's and the site's notation section shows them."""
    return markdown_table() + "\n" + abbreviations_table()

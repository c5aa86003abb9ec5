"""Mutation check: plant a known bug in a copy of the package, one at a time, and require that the unit
tests for that module fail on it. A test suite that passes a wrong sign, a missing factor 1/2, sigma for
sigma^2, a transposed covariance, a dropped noise term or a biased estimator is not checking anything.

Each mutant names the file, the exact text it replaces (which must occur once, so a refactor that moves
the code makes this test fail loudly instead of silently testing nothing), the bug, and the tests that
must catch it. Each mutant runs in its own interpreter (one pytest run) against a copy of the package put first on
PYTHONPATH, two at a time on one thread each.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (id, file, original text, mutated text, tests that must fail)
MUTANTS = [
    ("densities-score-sign", "densities.py",
     "        return (untile @ ((spread @ resp) * comp_scores)).T.contiguous()",
     "        return -(untile @ ((spread @ resp) * comp_scores)).T.contiguous()",
     "tests/test_densities.py::test_score_matches_autograd"),
    ("densities-prior-weights-not-responsibilities", "densities.py",
     "        resp = torch.softmax(terms, dim=0)\n        comp_scores",
     "        resp = torch.softmax(log_w_prior(self, terms), dim=0)\n        comp_scores",
     "tests/test_densities.py::test_score_matches_autograd"),
    ("densities-transposed-cholesky", "densities.py",
     'torch.einsum("nde,ne->nd", chol[k], z)',
     'torch.einsum("ned,ne->nd", chol[k], z)',
     "tests/test_densities.py::test_sample_moments"),
    ("densities-sigma-for-sigma2", "densities.py",
     "alpha**2 * self.covs + std**2 * eye",
     "alpha**2 * self.covs + std * eye",
     "tests/test_densities.py::test_perturb_matches_monte_carlo_convolution"),
    ("losses-dsm-target-sign", "losses.py",
     "    return 0.5 * (s + z / sig).pow(2)",
     "    return 0.5 * (s - z / sig).pow(2)",
     "tests/test_ncsn.py::test_ncsn_loss_is_lowest_at_exact_score"),
    ("losses-explicit-sm-missing-half", "losses.py",
     "        return (trace + 0.5 * s.pow(2).sum(1)).mean()",
     "        return (trace + s.pow(2).sum(1)).mean()",
     "tests/test_losses.py::test_losses_equal_fisher_up_to_data_constant"),
    ("losses-sde-dsm-unweighted", "losses.py",
     "    return (std * s + z).pow(2)",
     "    return (s + z).pow(2)",
     "tests/test_sde.py::test_sde_dsm_optimum_direction"),
    ("schedules-step-sigma-not-sigma2", "schedules.py",
     "    return step_size * sigmas**2 / sigmas[-1] ** 2",
     "    return step_size * sigmas / sigmas[-1]",
     "tests/test_ncsn.py::test_step_sizes_and_constant_snr"),
    ("samplers-langevin-eps-not-half", "mcmc.py",
     "        x = x + 0.5 * step_size * s + noise_scale * randn_like(x, generator)",
     "        x = x + step_size * s + noise_scale * randn_like(x, generator)",
     "tests/test_samplers.py::test_langevin_moments_and_shrinking_bias"),
    ("samplers-annealed-sigma-not-sigma2", "mcmc.py",
     "        eps_i = step_size * sigma**2 / sig[-1] ** 2",
     "        eps_i = step_size * sigma / sig[-1]",
     "tests/test_ncsn.py::test_annealed_langevin_update_and_path"),
    ("samplers-mala-no-proposal-correction", "mcmc.py",
     "        log_alpha = log_p_y + bwd - log_p - fwd",
     "        log_alpha = log_p_y - log_p",
     "tests/test_samplers.py::test_mala_unbiased_at_large_step"),
    ("samplers-em-dropped-noise", "solvers.py",
     "    return mean + per_sample(sde.diffusion(tv, check=False), x) * math.sqrt(-dt) * randn_like(x, generator)",
     "    return mean",
     "tests/test_sde.py::test_reverse_sampling_with_exact_score_hits_target"),
    ("schedules-karras-rho-ignored", "schedules.py",
     "    sigmas = (hi + frac * (lo - hi)) ** rho",
     "    sigmas = hi**rho + frac * (lo**rho - hi**rho)",
     "tests/test_fast_sampling.py::test_karras_sigmas_formula_and_limits"),
    ("sde-denoiser-sigma-not-sigma2", "sde.py",
     "        k = per_sample((sig**2 * alpha)",
     "        k = per_sample((sig * alpha)",
     "tests/test_fast_sampling.py::test_denoiser_is_the_posterior_mean_for_a_gaussian"),
    ("sde-denoiser-missing-alpha", "sde.py",
     "        k = per_sample((sig**2 * alpha)",
     "        k = per_sample((sig**2 + 0 * alpha)",
     "tests/test_fast_sampling.py::test_denoiser_is_the_posterior_mean_for_a_gaussian"),
    ("solvers-heun-not-trapezoidal", "solvers.py",
     "            x_next = x + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)",
     "            x_next = x + (s_next - s_hat) * d_next",
     "tests/test_fast_sampling.py::test_convergence_order_euler_heun_dpm"),
    ("solvers-dpm-no-extrapolation", "solvers.py",
     "            d_eff = (1.0 + 1.0 / (2.0 * r)) * den - (1.0 / (2.0 * r)) * den_prev",
     "            d_eff = den",
     "tests/test_fast_sampling.py::test_convergence_order_euler_heun_dpm"),
    ("solvers-edm-churn-without-noise", "solvers.py",
     "            x = x + math.sqrt(s_hat**2 - s_cur**2) * s_noise * randn_like(x, generator)",
     "            x = x + 0.0 * randn_like(x, generator)",
     "tests/test_fast_sampling.py::test_edm_and_dpm_reach_the_ring_with_exact_scores"),
    ("guidance-cfg-scale-on-wrong-term", "guidance.py",
     "        return s_u + scale * (cond_score_fn(x, t) - s_u)",
     "        return cond_score_fn(x, t) + scale * (cond_score_fn(x, t) - s_u)",
     "tests/test_guidance.py::test_guided_score_arithmetic"),
    ("guidance-repaint-backup-without-noise", "guidance.py",
     "            x = ratio * x + std * _checks.randn_like(x, generator)",
     "            x = ratio * x",
     "tests/test_guidance.py::test_inpainting_against_the_exact_conditional"),
    ("guidance-classifier-grad-sign", "guidance.py",
     "        return self.class_marginal(y).score(x, t) - self.marginal.score(x, t)",
     "        return self.marginal.score(x, t) - self.class_marginal(y).score(x, t)",
     "tests/test_guidance.py::test_mixture_classifier_is_bayes"),
    ("sde-ode-missing-half", "sde.py",
     "(0.5 if ode else 1.0) * g2 * score",
     "(1.0 if ode else 1.0) * g2 * score",
     "tests/test_sde.py::test_ode_likelihood_matches_analytic"),
    ("sde-continuity-transport-term-sign", "sde.py",
     "    rhs = -div - (v * score).sum(-1)",
     "    rhs = -div + (v * score).sum(-1)",
     "tests/test_sde.py::test_probability_flow_velocity_satisfies_the_continuity_equation"),
    ("sde-continuity-g-not-g2", "sde.py",
     "    g2 = per_sample(sde.diffusion(tv).to(torch.float64) ** 2, xr)",
     "    g2 = per_sample(sde.diffusion(tv).to(torch.float64), xr)",
     "tests/test_sde.py::test_probability_flow_velocity_satisfies_the_continuity_equation"),
    ("sde-imperfect-score-wrong-side", "sde.py",
     "(sde.sigma_of_t(tv.to(torch.float64)) > sigma_above)",
     "(sde.sigma_of_t(tv.to(torch.float64)) < sigma_above)",
     "tests/test_sde.py::test_imperfect_score_is_exact_below_its_level_and_scaled_above"),
    ("metrics-score-norm-law-sigma2-noise", "metrics.py",
     "s = score_fn(mean + std.view(-1, *[1] * (x0.dim() - 1)) * z, tt)",
     "s = score_fn(mean + std.view(-1, *[1] * (x0.dim() - 1)) ** 2 * z, tt)",
     "tests/test_train_metrics.py::test_score_norm_law_known_value_for_a_point_mass"),
    ("sde-ve-std-without-sqrt", "sde.py",
     "std = self.sigma_min * torch.sqrt(torch.expm1(2 * t * self._log_ratio))",
     "std = self.sigma_min * torch.expm1(2 * t * self._log_ratio)",
     "tests/test_sde.py::test_marginal_prob_matches_forward_simulation"),
    ("metrics-energy-v-statistic", "metrics.py",
     "    return float(torch.cdist(a, a).sum() / (len(a) * (len(a) - 1)))",
     "    return float(torch.cdist(a, a).sum() / (len(a) * len(a)))",
     "tests/test_train_metrics.py::test_energy_distance_is_unbiased_against_closed_form"),
    ("metrics-frechet-diagonal-only", "metrics.py",
     "    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()",
     "    tr_sqrt = (torch.diagonal(cov_a) * torch.diagonal(cov_b)).clamp(min=0).sqrt().sum()",
     "tests/test_mnist.py::test_frechet_distance_non_isotropic_closed_form"),
    ("train-ema-decay-reversed", "train.py",
     "[tracked[k].detach() for k in keys], 1.0 - d)",
     "[tracked[k].detach() for k in keys], d)",
     "tests/test_train_metrics.py::test_ema_arithmetic_without_warmup"),
    # checks that passed broken code (issue 20)
    ("solvers-edm-churn-not-divided-by-n", "solvers.py",
     "    n = len(sigmas) - 1\n    gamma_max = min(churn / n, math.sqrt(2.0) - 1.0)",
     "    n = len(sigmas) - 1\n    gamma_max = min(churn, math.sqrt(2.0) - 1.0)",
     "tests/test_fast_sampling.py::test_edm_churn_below_the_cap_by_hand"),
    ("solvers-dpm-ratio-inverted", "solvers.py",
     "            r = h_prev / h\n",
     "            r = h / h_prev\n",
     "tests/test_fast_sampling.py::test_dpm_solver_2m_by_hand"),
    ("guidance-replacement-clean-known", "guidance.py",
     "        noisy = sde.perturb(known, grid[i].to(known.dtype), _checks.randn_like(known, generator), check=False)",
     "        noisy = known",
     "tests/test_guidance.py::test_replacement_noises_the_known_part_with_the_forward_kernel"),
    ("guidance-repaint-jump-without-alpha-ratio", "guidance.py",
     "            x = ratio * x + std * _checks.randn_like(x, generator)",
     "            x = x + std * _checks.randn_like(x, generator)",
     "tests/test_guidance.py::test_repaint_with_vp_against_the_exact_conditional"),
    ("guidance-noisy-classifier-without-alpha", "guidance.py",
     "        h = x * (c_in / alpha).reshape(-1, 1, 1, 1)",
     "        h = x * c_in.reshape(-1, 1, 1, 1)",
     "tests/test_guidance.py::test_noisy_classifier_sees_the_scaled_state_at_unit_variance"),
    # training recipes (issue 19, notebook 10)
    ("recipes-edm-skip-sign", "recipes.py",
     "    a = -1.0 / (sigma**2 + sd2)",
     "    a = 1.0 / (sigma**2 + sd2)",
     "tests/test_recipes.py::test_preconditioned_is_exact_for_a_gaussian"),
    ("recipes-cout-sigma-not-sigma2", "recipes.py",
     "    b = sigma_data / (sigma * torch.sqrt(sigma**2 + sd2))",
     "    b = sigma_data / torch.sqrt(sigma**2 + sd2)",
     "tests/test_recipes.py::test_preconditioned_is_exact_for_a_gaussian"),
    ("recipes-cin-missing-root", "recipes.py",
     "sigma * sigma_data / root, 1.0 / root, torch.log(sigma) / 4",
     "sigma * sigma_data / root, 1.0 / root**2, torch.log(sigma) / 4",
     "tests/test_recipes.py::test_edm_target_has_unit_std_and_none_input_does_not"),
    ("recipes-importance-weight-not-inverted", "recipes.py",
     "        return t, 1.0 / ((1 - eps) * q)",
     "        return t, (1 - eps) * q",
     "tests/test_recipes.py::test_importance_sampler_normaliser_and_unbiased"),
    ("recipes-importance-density-std-not-std2", "recipes.py",
     "        return g**2 / std**2\n",
     "        return g**2 / std\n",
     "tests/test_recipes.py::test_importance_sampler_normaliser_and_unbiased"),
    ("recipes-likelihood-weight-without-std", "recipes.py",
     "        return sde.diffusion(t, check=False) ** 2 / std**2",
     "        return sde.diffusion(t, check=False) ** 2",
     "tests/test_recipes.py::test_importance_sampler_normaliser_and_unbiased"),
    ("recipes-edm-weight-missing-sigma-data", "recipes.py",
     "        return (sigma**2 + sigma_data**2) / sigma_data**2",
     "        return sigma**2 + sigma_data**2",
     "tests/test_recipes.py::test_edm_weighting_is_unit_weight_on_the_raw_output"),
    ("recipes-bits-floor-sigma-not-h", "recipes.py",
     "    mass = normal.cdf((1 - u) * h / sigma_min) - normal.cdf(-u * h / sigma_min)",
     "    mass = normal.cdf((1 - u) / sigma_min) - normal.cdf(-u / sigma_min)",
     "tests/test_recipes.py::test_bits_floor_known_values"),
    ("metrics-memorisation-second-neighbour", "metrics.py",
     "    return d[:, 0] / d[:, 1].clamp_min(1e-12)",
     "    return d[:, 0] / d[:, 0].clamp_min(1e-12)",
     "tests/test_recipes.py::test_memorisation_known_values"),
    ("guidance-conditional-values-not-reordered", "guidance.py",
     "    known, v = [given[i] for i in order], v[order]",
     "    known, v = [given[i] for i in order], v",
     "tests/test_guidance.py::test_conditional_in_higher_dimensions_any_order"),
    ("grading-other-cells-not-locked", "grading.py",
     '            cell["metadata"]["nbgrader"] = _meta(f"{number}-locked-{i:03d}")',
     '            cell["metadata"]["nbgrader"] = _meta(f"{number}-locked-{i:03d}", locked=False)',
     "tests/test_grading.py::test_source_notebooks_metadata"),
    ("grading-points-not-from-the-table", "grading.py",
     "                                               points=exercises.POINTS[check])},",
     "                                               points=1)},",
     "tests/test_grading.py::test_source_notebooks_metadata"),
    ("widgets-density-colour-scale-from-the-first-image", "widgets.py",
     'interpolation="bilinear",\n                   vmin=0.0, vmax=1.0)',
     'interpolation="bilinear")',
     "tests/test_widgets.py::test_2d_views_update_their_figure_in_place_exactly"),
    ("live-no-computing-state-before-the-work", "live.py",
     "        self.status.value = '<span data-state=\"computing\">computing...</span>'   # sent to the browser now\n",
     "",
     "tests/test_widgets.py::test_live_view_says_computing_first_then_what_the_update_cost"),
    ("site-equations-counted-in-code-spans", "site.py",
     "    return len(_MATH.findall(_CODE_SPAN.sub(\" \", markdown)))",
     "    return len(_MATH.findall(markdown))",
     "tests/test_site.py::test_count_equations_known_values"),
    ("site-alt-text-without-the-caption", "site.py",
     "        if follow:\n            parts.append(follow)",
     "        if follow and not titles:\n            parts.append(follow)",
     "tests/test_site.py::test_figure_alt_texts_from_titles_and_the_following_sentence"),
    # issue 32: the references of the whole-method exercises (01-05) are the package's functions
    ("losses-ssm-missing-half", "losses.py",
     "        return (vjv + 0.5 * norm).mean()",
     "        return (vjv + norm).mean()",
     "tests/test_exercise_builds.py::test_solutions_pass"),
    ("losses-ssm-no-graph-through-the-trace", "losses.py",
     "        grad_vs = torch.autograd.grad(vs, xr, create_graph=True)[0]",
     "        grad_vs = torch.autograd.grad(vs, xr, create_graph=False)[0]",
     "tests/test_exercise_builds.py::test_solutions_pass"),
    ("losses-dsm-missing-half", "losses.py",
     "    return 0.5 * (s - dsm_target(x_tilde, x, sigma)).pow(2).reshape(len(x), -1).sum(1).mean()",
     "    return (s - dsm_target(x_tilde, x, sigma)).pow(2).reshape(len(x), -1).sum(1).mean()",
     "tests/test_exercise_builds.py::test_solutions_pass"),
    ("losses-ncsn-weight-sigma-not-sigma2", "losses.py",
     "    return (lam(sig) * _ncsn_per_point(s, z, sig.view(view))).mean()",
     "    return (sig * _ncsn_per_point(s, z, sig.view(view))).mean()",
     "tests/test_exercise_ncsn.py::test_ncsn_loss_reference_passes"),
    ("mcmc-annealed-noise-sqrt-2eps", "mcmc.py",
     "        noise_scale = math.sqrt(eps_i)",
     "        noise_scale = math.sqrt(2 * eps_i)",
     "tests/test_exercise_ncsn.py::test_annealed_langevin_reference_passes"),
    ("schedules-measured-snr-missing-half", "schedules.py",
     "        signal = 0.5 * eps_i * q.score(x).norm(dim=1).mean().item()",
     "        signal = eps_i * q.score(x).norm(dim=1).mean().item()",
     "tests/test_exercise_ncsn.py::test_measured_update_snr_gaussian_limits"),
    # issue 32: notebook 10's EDM loss, bits/dim references and the denoiser-error measurement
    ('recipes-edm-loss-weight-not-squared', "recipes.py",
     '    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2',
     '    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data)',
     'tests/test_exercise_recipes.py::test_edm_loss_solution_passes'),
    ('recipes-edm-loss-p-std-squared', "recipes.py",
     '    sigma = torch.exp(p_mean + p_std * n)',
     '    sigma = torch.exp(p_mean + p_std**2 * n)',
     'tests/test_exercise_recipes.py::test_edm_loss_solution_passes'),
    ('recipes-bits-point-mass-12-not-24', "recipes.py",
     'h**2 / (24 * sigma_min**2 * math.log(2))',
     'h**2 / (12 * sigma_min**2 * math.log(2))',
     'tests/test_recipes.py::test_bits_point_mass_closed_form_and_the_reviewers_numbers'),
    ('recipes-bits-bound-without-its-certificate', "recipes.py",
     '    return {"bound": value - math.log2(certificate), "value": value,',
     '    return {"bound": value, "value": value,',
     'tests/test_recipes.py::test_bits_bound_is_below_both_references_and_tight'),
    ('recipes-denoiser-error-tweedie-sigma-not-sigma2', "recipes.py",
     '        d_wrong = y + sigma**2 * alpha[:, None] * wrong(x, t)',
     '        d_wrong = y + sigma * alpha[:, None] * wrong(x, t)',
     'tests/test_recipes.py::test_denoiser_error_noise_prediction_grows_with_sigma_edm_is_bounded'),
    # issue 32: RePaint's jump kernel, the EMA window's warm-up, nbgrader without an activated environment
    ("guidance-repaint-jump-ratio-dropped", "guidance.py",
     "            std = math.sqrt(max(stds[j] ** 2 - (ratio * stds[i]) ** 2, 0.0))",
     "            std = math.sqrt(max(stds[j] ** 2 - stds[i] ** 2, 0.0))",
     "tests/test_guidance.py::test_repaint_jump_is_the_forward_transition_kernel"),
    ("train-ema-window-warmup-off-by-one", "train.py",
     "    d = torch.clamp(k / (9 + k), max=decay) if warmup else torch.full_like(k, decay)",
     "    d = torch.clamp(k / (10 + k), max=decay) if warmup else torch.full_like(k, decay)",
     "tests/test_ema_window.py::test_ema_weights_are_what_the_ema_class_computes"),
    ("grading-interpreter-bin-not-on-path", "grading.py",
     '    env["PATH"] = os.pathsep.join([first, *rest])',
     '    env["PATH"] = os.pathsep.join(rest)',
     "tests/test_grading.py::test_nbgrader_env_puts_the_interpreters_bin_first"),
    # issue 32: EDM's churn window and noise, the exercise's top cap, the fair baseline of the speed-up
    ("solvers-churn-window-ignored", "solvers.py",
     "        gamma = gamma_max if s_tmin <= s_cur <= s_tmax else 0.0",
     "        gamma = gamma_max",
     "tests/test_windowed_churn.py::test_windowed_churn_by_hand"),
    ("solvers-churn-s-noise-dropped", "solvers.py",
     "            x = x + math.sqrt(s_hat**2 - s_cur**2) * s_noise * randn_like(x, generator)",
     "            x = x + math.sqrt(s_hat**2 - s_cur**2) * randn_like(x, generator)",
     "tests/test_windowed_churn.py::test_windowed_churn_by_hand"),
    ("solvers-churn-noise-std-sigma-hat", "solvers.py",
     "            x = x + math.sqrt(s_hat**2 - s_cur**2) * s_noise * randn_like(x, generator)",
     "            x = x + s_hat * s_noise * randn_like(x, generator)",
     "tests/test_windowed_churn.py::test_windowed_churn_samples_the_target"),
    ("exercise-fast-reference-above-sigma0", "exercise_fast.py",
     "        if not no_top:",
     "        if no_top:",
     "tests/test_exercise_fast.py::test_solution_and_reference_pass"),
    ("results-speedup-footer-against-em500", "results.py",
     "f\"{_fmt(s['nfe_ratio'], '.1f')}x fewer evaluations",
     "f\"{_fmt(500 / s['sampler']['nfe'], '.1f')}x fewer evaluations",
     "tests/test_fast_sampling.py::test_fast_sampling_table_footer_uses_the_fair_baseline"),
    # issue 32: the exercise checks accept float32 where it is right and say so where it is not
    ("exercise-em-sampler-float32-times-rejected", "exercise_methods.py",
     "_EM_RTOL = 1e-5",
     "_EM_RTOL = 1e-8",
     "tests/test_exercises.py::test_em_sampler_accepts_float32_times"),
    ("exercise-em-sampler-no-near-miss-digits", "exercise_methods.py",
     "err <= 1e-3 * scale):",
     "err <= 0 * scale):",
     "tests/test_exercises.py::test_em_sampler_near_miss_prints_digits_that_differ"),
    ("exercise-em-step-absolute-tolerance", "exercises.py",
     "want, 1e-6 * float(want.abs().max()), f\"eq. (7)",
     "want, 1e-9, f\"eq. (7)",
     "tests/test_exercises.py::test_em_step_accepts_a_float32_time_and_mistakes_still_fail"),
    ("exercise-edm-loss-float64-cast-accepted", "exercise_recipes.py",
     "got.dtype != torch.float32:",
     "got.dtype == torch.float16:",
     "tests/test_exercise_recipes.py::test_edm_loss_cast_to_float64_is_recognised"),
    ("notation-first-in-where-it-is-taught", "notation.py",
     '    ("EMA", "exponential moving average of the weights", "02"),',
     '    ("EMA", "exponential moving average of the weights", "07"),',
     "tests/test_notation.py::test_each_abbreviation_is_first_used_where_the_sheet_says"),
]

# helpers some mutants call, appended to the mutated module
EXTRA = {
    "densities-prior-weights-not-responsibilities":
        "\n\ndef log_w_prior(mix, terms):\n    return torch.log(mix.weights.to(terms.dtype))[:, None].expand_as(terms)\n",
}


def test_mutants_are_listed_for_every_module():
    files = {m[1] for m in MUTANTS}
    assert {"densities.py", "losses.py", "schedules.py", "mcmc.py", "solvers.py", "sde.py", "metrics.py",
            "train.py", "guidance.py", "recipes.py"} <= files
    assert len(MUTANTS) >= 18


WORKERS = 2     # mutants run two at a time, each on one thread (CI has 2 cores)


def _run_mutant(mutant, folder: Path) -> tuple[int, str]:
    """Copy the package into ``folder``, plant the bug, run its tests in one fresh interpreter that first
    checks it imported the mutated copy (exit 17 otherwise); returns (exit code, output)."""
    name, filename, old, new, tests = mutant
    pkg = folder / "scoregen_lite"
    shutil.copytree(REPO / "scoregen_lite", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    src = (pkg / filename).read_text()
    if src.count(old) != 1:
        return -1, f"{name}: the text to mutate occurs {src.count(old)} times in {filename}; update MUTANTS"
    (pkg / filename).write_text(src.replace(old, new) + EXTRA.get(name, ""))
    env = dict(os.environ, PYTHONPATH=str(folder) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               SCOREGEN_QUICK="1", SCOREGEN_CACHE=str(folder / "cache"), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")   # no nbval, hypothesis, anyio: half of each run's start-up
    # run from the copy's folder: python puts the working directory first on sys.path, so the mutated
    # package is the one imported (checked before any test), and the tests are named by their absolute paths
    args = ["-x", "-q", "-p", "no:cacheprovider", "--rootdir", str(REPO), *(str(REPO / t) for t in tests.split())]
    code = (f"import sys, scoregen_lite, pytest\n"
            f"if scoregen_lite.__file__ != {str(pkg / '__init__.py')!r}:\n"
            f"    print('imported', scoregen_lite.__file__, 'not the mutated copy'); sys.exit(17)\n"
            f"sys.exit(pytest.main({args!r}))\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=folder, timeout=900)
    return res.returncode, res.stdout[-2000:] + res.stderr[-1000:]


@pytest.fixture(scope="module")
def mutant_runs(request, tmp_path_factory):
    """Every selected mutant, run ``WORKERS`` at a time (the first mutant test waits for all of them)."""
    from concurrent.futures import ThreadPoolExecutor

    selected = [item.callspec.params["mutant"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_mutant_is_killed"]
    root = tmp_path_factory.mktemp("mutants")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {m[0]: pool.submit(_run_mutant, m, root / m[0]) for m in selected}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_is_killed(mutant, mutant_runs):
    name = mutant[0]
    rc, out = mutant_runs[name]
    assert rc != -1, out
    assert rc != 17, f"mutant {name}: the mutated copy was not the package imported:\n{out}"
    assert rc == 1, f"mutant {name} survived (or the run broke, rc={rc}):\n" + out

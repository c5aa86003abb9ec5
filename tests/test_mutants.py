"""Mutation check: plant a known bug in a copy of the package, one at a time, and require that the unit
tests for that module fail on it. A test suite that passes a wrong sign, a missing factor 1/2, sigma for
sigma^2, a transposed covariance, a dropped noise term or a biased estimator is not checking anything.

Each mutant names a module (dotted), a function, method or module-level name in it (its qualname, e.g.
``GaussianMixture.score``; nested functions as ``outer.inner``), the text it replaces, the bug, and the tests
that must catch it. The text is looked for inside that definition only, with ``ast``, and matched whatever
its whitespace (a line broken over two, spaces around an operator); it must occur there exactly once, so a
refactor that moves or rewrites the code makes this test fail loudly, naming the mutant, instead of
silently testing nothing (``mutate`` below; ``test_every_mutant_finds_its_text`` checks all of them in the
quick run). Each mutant runs in its own interpreter (one pytest run) against a copy of the package put first
on PYTHONPATH, two at a time on one thread each; those runs are marked slow (``pytest --slow``, as in CI).
"""
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "scoregen_lite"

# (id, module, qualname, original text, mutated text, tests that must fail)
MUTANTS = [
    ("densities-score-sign", "scoregen_lite.core.mixture", "GaussianMixture.score",
     "        return (untile @ ((spread @ resp) * comp_scores)).T.contiguous()",
     "        return -(untile @ ((spread @ resp) * comp_scores)).T.contiguous()",
     "tests/test_densities.py::test_score_matches_autograd"),
    ("densities-prior-weights-not-responsibilities", "scoregen_lite.core.mixture", "GaussianMixture.score",
     "        resp = torch.softmax(terms, dim=0)\n        comp_scores",
     "        resp = torch.softmax(log_w_prior(self, terms), dim=0)\n        comp_scores",
     "tests/test_densities.py::test_score_matches_autograd"),
    ("densities-transposed-cholesky", "scoregen_lite.core.mixture", "GaussianMixture.sample",
     'torch.einsum("nde,ne->nd", chol[k], z)',
     'torch.einsum("ned,ne->nd", chol[k], z)',
     "tests/test_densities.py::test_sample_moments"),
    ("densities-sigma-for-sigma2", "scoregen_lite.core.mixture", "GaussianMixture.diffuse",
     "alpha**2 * self.covs + std**2 * eye",
     "alpha**2 * self.covs + std * eye",
     "tests/test_densities.py::test_perturb_matches_monte_carlo_convolution"),
    ("losses-dsm-target-sign", "scoregen_lite.core.losses", "_ncsn_per_point",
     "    return 0.5 * (s + z / sig).pow(2)",
     "    return 0.5 * (s - z / sig).pow(2)",
     "tests/test_ncsn.py::test_ncsn_loss_is_lowest_at_exact_score"),
    ("losses-explicit-sm-missing-half", "scoregen_lite.core.losses", "explicit_score_matching",
     "        return (trace + 0.5 * s.pow(2).sum(1)).mean()",
     "        return (trace + s.pow(2).sum(1)).mean()",
     "tests/test_losses.py::test_losses_equal_fisher_up_to_data_constant"),
    ("losses-sde-dsm-unweighted", "scoregen_lite.core.losses", "_sde_dsm",
     "    return (std * s + z).pow(2)",
     "    return (s + z).pow(2)",
     "tests/test_sde.py::test_sde_dsm_optimum_direction"),
    ("schedules-step-sigma-not-sigma2", "scoregen_lite.core.schedules", "step_sizes",
     "    return step_size * sigmas**2 / sigmas[-1] ** 2",
     "    return step_size * sigmas / sigmas[-1]",
     "tests/test_ncsn.py::test_step_sizes_and_constant_snr"),
    ("samplers-langevin-eps-not-half", "scoregen_lite.core.mcmc", "langevin",
     "        x = x + 0.5 * step_size * s + noise_scale * randn_like(x, generator)",
     "        x = x + step_size * s + noise_scale * randn_like(x, generator)",
     "tests/test_samplers.py::test_langevin_moments_and_shrinking_bias"),
    ("samplers-annealed-sigma-not-sigma2", "scoregen_lite.core.mcmc", "annealed_langevin",
     "        eps_i = step_size * sigma**2 / sig[-1] ** 2",
     "        eps_i = step_size * sigma / sig[-1]",
     "tests/test_ncsn.py::test_annealed_langevin_update_and_path"),
    ("samplers-mala-no-proposal-correction", "scoregen_lite.core.mcmc", "mala",
     "        log_alpha = log_p_y + bwd - log_p - fwd",
     "        log_alpha = log_p_y - log_p",
     "tests/test_samplers.py::test_mala_unbiased_at_large_step"),
    ("samplers-em-dropped-noise", "scoregen_lite.core.solvers", "_em_step",
     "    return mean + per_sample(sde.diffusion(tv, check=False), x) * math.sqrt(-dt) * randn_like(x, generator)",
     "    return mean",
     "tests/test_sde.py::test_reverse_sampling_with_exact_score_hits_target"),
    ("schedules-karras-rho-ignored", "scoregen_lite.core.schedules", "karras_sigmas",
     "    sigmas = (hi + frac * (lo - hi)) ** rho",
     "    sigmas = hi**rho + frac * (lo**rho - hi**rho)",
     "tests/test_fast_sampling.py::test_karras_sigmas_formula_and_limits"),
    ("sde-denoiser-sigma-not-sigma2", "scoregen_lite.core.sde", "denoiser.D",
     "        k = per_sample((sig**2 * alpha)",
     "        k = per_sample((sig * alpha)",
     "tests/test_fast_sampling.py::test_denoiser_is_the_posterior_mean_for_a_gaussian"),
    ("sde-denoiser-missing-alpha", "scoregen_lite.core.sde", "denoiser.D",
     "        k = per_sample((sig**2 * alpha)",
     "        k = per_sample((sig**2 + 0 * alpha)",
     "tests/test_fast_sampling.py::test_denoiser_is_the_posterior_mean_for_a_gaussian"),
    ("solvers-heun-not-trapezoidal", "scoregen_lite.core.fast", "edm_sampler",
     "            x_next = x + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)",
     "            x_next = x + (s_next - s_hat) * d_next",
     "tests/test_fast_sampling.py::test_convergence_order_euler_heun_dpm"),
    ("solvers-dpm-no-extrapolation", "scoregen_lite.core.fast", "dpm_solver_2m",
     "            d_eff = (1.0 + 1.0 / (2.0 * r)) * den - (1.0 / (2.0 * r)) * den_prev",
     "            d_eff = den",
     "tests/test_fast_sampling.py::test_convergence_order_euler_heun_dpm"),
    ("solvers-edm-churn-without-noise", "scoregen_lite.core.fast", "edm_sampler",
     "            x = x + math.sqrt(s_hat**2 - s_cur**2) * s_noise * randn_like(x, generator)",
     "            x = x + 0.0 * randn_like(x, generator)",
     "tests/test_fast_sampling.py::test_edm_and_dpm_reach_the_ring_with_exact_scores"),
    ("guidance-cfg-scale-on-wrong-term", "scoregen_lite.core.guidance", "classifier_free.guided",
     "        return s_u + scale * (cond_score_fn(x, t) - s_u)",
     "        return cond_score_fn(x, t) + scale * (cond_score_fn(x, t) - s_u)",
     "tests/test_guidance.py::test_guided_score_arithmetic"),
    ("guidance-repaint-backup-without-noise", "scoregen_lite.core.guidance", "inpaint",
     "            x = ratio * x + std * randn_like(x, generator)",
     "            x = ratio * x",
     "tests/test_guidance.py::test_inpainting_against_the_exact_conditional"),
    ("guidance-classifier-grad-sign", "scoregen_lite.core.guidance", "MixtureClassifier.grad_log_prob",
     "        return self.class_marginal(y).score(x, t) - self.marginal.score(x, t)",
     "        return self.marginal.score(x, t) - self.class_marginal(y).score(x, t)",
     "tests/test_guidance.py::test_mixture_classifier_is_bayes"),
    ("sde-ode-missing-half", "scoregen_lite.core.sde", "SDE._reverse_drift_raw",
     "(0.5 if ode else 1.0) * g2 * score",
     "(1.0 if ode else 1.0) * g2 * score",
     "tests/test_sde.py::test_ode_likelihood_matches_analytic"),
    ("sde-continuity-transport-term-sign", "scoregen_lite.core.sde", "continuity_check",
     "    rhs = -div - (v * score).sum(-1)",
     "    rhs = -div + (v * score).sum(-1)",
     "tests/test_sde.py::test_probability_flow_velocity_satisfies_the_continuity_equation"),
    ("sde-continuity-g-not-g2", "scoregen_lite.core.sde", "continuity_check",
     "    g2 = per_sample(sde.diffusion(tv).to(torch.float64) ** 2, xr)",
     "    g2 = per_sample(sde.diffusion(tv).to(torch.float64), xr)",
     "tests/test_sde.py::test_probability_flow_velocity_satisfies_the_continuity_equation"),
    ("sde-imperfect-score-wrong-side", "scoregen_lite.core.sde", "imperfect_score.score",
     "(sde.sigma_of_t(tv.to(torch.float64)) > sigma_above)",
     "(sde.sigma_of_t(tv.to(torch.float64)) < sigma_above)",
     "tests/test_sde.py::test_imperfect_score_is_exact_below_its_level_and_scaled_above"),
    ("metrics-score-norm-law-sigma2-noise", "scoregen_lite.core.metrics", "score_norm_law",
     "s = score_fn(mean + std.view(-1, *[1] * (x0.dim() - 1)) * z, tt)",
     "s = score_fn(mean + std.view(-1, *[1] * (x0.dim() - 1)) ** 2 * z, tt)",
     "tests/test_train_metrics.py::test_score_norm_law_known_value_for_a_point_mass"),
    ("sde-ve-std-without-sqrt", "scoregen_lite.core.sde", "VESDE._coeffs",
     "std = self.sigma_min * torch.sqrt(torch.expm1(2 * t * self._log_ratio))",
     "std = self.sigma_min * torch.expm1(2 * t * self._log_ratio)",
     "tests/test_sde.py::test_marginal_prob_matches_forward_simulation"),
    ("metrics-energy-v-statistic", "scoregen_lite.core.metrics", "mean_distance_within",
     "    return float(torch.cdist(a, a).sum() / (len(a) * (len(a) - 1)))",
     "    return float(torch.cdist(a, a).sum() / (len(a) * len(a)))",
     "tests/test_train_metrics.py::test_energy_distance_is_unbiased_against_closed_form"),
    ("metrics-frechet-diagonal-only", "scoregen_lite.images.evaluation", "frechet_distance",
     "    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()",
     "    tr_sqrt = (torch.diagonal(cov_a) * torch.diagonal(cov_b)).clamp(min=0).sqrt().sum()",
     "tests/test_mnist.py::test_frechet_distance_non_isotropic_closed_form"),
    ("train-ema-decay-reversed", "scoregen_lite.core.train", "EMA.update",
     "[tracked[k].detach() for k in keys], 1.0 - d)",
     "[tracked[k].detach() for k in keys], d)",
     "tests/test_train_metrics.py::test_ema_arithmetic_without_warmup"),
    # checks that passed broken code (issue 20)
    ("solvers-edm-churn-not-divided-by-n", "scoregen_lite.core.fast", "churn_etas",
     "    gamma_max = min(churn / n, math.sqrt(2.0) - 1.0)",
     "    gamma_max = min(churn, math.sqrt(2.0) - 1.0)",
     "tests/test_fast_sampling.py::test_edm_churn_below_the_cap_by_hand"),
    ("solvers-dpm-ratio-inverted", "scoregen_lite.core.fast", "dpm_solver_2m",
     "            r = h_prev / h\n",
     "            r = h / h_prev\n",
     "tests/test_fast_sampling.py::test_dpm_solver_2m_by_hand"),
    ("guidance-replacement-clean-known", "scoregen_lite.core.guidance", "inpaint.replace",
     "        noisy = sde.perturb(known, grid[i].to(known.dtype), randn_like(known, generator), check=False)",
     "        noisy = known",
     "tests/test_guidance.py::test_replacement_noises_the_known_part_with_the_forward_kernel"),
    ("guidance-repaint-jump-without-alpha-ratio", "scoregen_lite.core.guidance", "inpaint",
     "            x = ratio * x + std * randn_like(x, generator)",
     "            x = x + std * randn_like(x, generator)",
     "tests/test_guidance.py::test_repaint_with_vp_against_the_exact_conditional"),
    ("guidance-noisy-classifier-without-alpha", "scoregen_lite.images.guidance", "NoisyClassifier.forward",
     "        h = x * (c_in / alpha).reshape(-1, 1, 1, 1)",
     "        h = x * c_in.reshape(-1, 1, 1, 1)",
     "tests/test_guidance.py::test_noisy_classifier_sees_the_scaled_state_at_unit_variance"),
    # training recipes (issue 19, notebook 10)
    ("recipes-edm-skip-sign", "scoregen_lite.core.recipes", "precondition",
     "    a = -1.0 / (sigma**2 + sd2)",
     "    a = 1.0 / (sigma**2 + sd2)",
     "tests/test_recipes.py::test_preconditioned_is_exact_for_a_gaussian"),
    ("recipes-cout-sigma-not-sigma2", "scoregen_lite.core.recipes", "precondition",
     "    b = sigma_data / (sigma * torch.sqrt(sigma**2 + sd2))",
     "    b = sigma_data / torch.sqrt(sigma**2 + sd2)",
     "tests/test_recipes.py::test_preconditioned_is_exact_for_a_gaussian"),
    ("recipes-cin-missing-root", "scoregen_lite.core.recipes", "coefficients",
     "sigma * sigma_data / root, 1.0 / root, torch.log(sigma) / 4",
     "sigma * sigma_data / root, 1.0 / root**2, torch.log(sigma) / 4",
     "tests/test_recipes.py::test_edm_target_has_unit_std_and_none_input_does_not"),
    ("recipes-importance-weight-not-inverted", "scoregen_lite.core.recipes", "sample_times",
     "        return t, 1.0 / ((1 - eps) * q)",
     "        return t, (1 - eps) * q",
     "tests/test_recipes.py::test_importance_sampler_normaliser_and_unbiased"),
    ("recipes-importance-density-std-not-std2", "scoregen_lite.core.recipes", "ImportanceSampler.density",
     "        return g**2 / std**2\n",
     "        return g**2 / std\n",
     "tests/test_recipes.py::test_importance_sampler_normaliser_and_unbiased"),
    ("recipes-likelihood-weight-without-std", "scoregen_lite.core.recipes", "loss_weight",
     "        return sde.diffusion(t, check=False) ** 2 / std**2",
     "        return sde.diffusion(t, check=False) ** 2",
     "tests/test_recipes.py::test_importance_sampler_normaliser_and_unbiased"),
    ("recipes-edm-weight-missing-sigma-data", "scoregen_lite.core.recipes", "loss_weight",
     "        return (sigma**2 + sigma_data**2) / sigma_data**2",
     "        return sigma**2 + sigma_data**2",
     "tests/test_recipes.py::test_edm_weighting_is_unit_weight_on_the_raw_output"),
    ("recipes-bits-floor-sigma-not-h", "scoregen_lite.core.recipes", "bits_floor",
     "    mass = normal.cdf((1 - u) * h / sigma_min) - normal.cdf(-u * h / sigma_min)",
     "    mass = normal.cdf((1 - u) / sigma_min) - normal.cdf(-u / sigma_min)",
     "tests/test_recipes.py::test_bits_floor_known_values"),
    ("metrics-memorisation-second-neighbour", "scoregen_lite.images.evaluation", "memorisation_ratio",
     "    return d[:, 0] / d[:, 1].clamp_min(1e-12)",
     "    return d[:, 0] / d[:, 0].clamp_min(1e-12)",
     "tests/test_recipes.py::test_memorisation_known_values"),
    ("guidance-conditional-values-not-reordered", "scoregen_lite.core.guidance", "conditional",
     "    known, v = [given[i] for i in order], v[order]",
     "    known, v = [given[i] for i in order], v",
     "tests/test_guidance.py::test_conditional_in_higher_dimensions_any_order"),
    ("grading-other-cells-not-locked", "scoregen_lite.courseware.grading", "nbgrader_notebook",
     '            cell["metadata"]["nbgrader"] = _meta(f"{number}-locked-{i:03d}")',
     '            cell["metadata"]["nbgrader"] = _meta(f"{number}-locked-{i:03d}", locked=False)',
     "tests/test_grading.py::test_source_notebooks_metadata"),
    ("grading-points-not-from-the-table", "scoregen_lite.courseware.grading", "nbgrader_notebook",
     "                                               points=POINTS[check])},",
     "                                               points=1)},",
     "tests/test_grading.py::test_source_notebooks_metadata"),
    ("widgets-density-colour-scale-from-the-first-image", "scoregen_lite.widgets.common", "density_axes",
     'interpolation="bilinear",\n                   vmin=0.0, vmax=1.0)',
     'interpolation="bilinear")',
     "tests/test_widgets.py::test_2d_views_update_their_figure_in_place_exactly"),
    ("live-no-computing-state-before-the-work", "scoregen_lite.widgets.live", "LiveView.update",
     "        self.status.value = '<span data-state=\"computing\">computing...</span>'   # sent to the browser now\n",
     "",
     "tests/test_widgets.py::test_live_view_says_computing_first_then_what_the_update_cost"),
    ("site-equations-counted-in-code-spans", "scoregen_lite.courseware.site", "count_equations",
     "    return len(_MATH.findall(_CODE_SPAN.sub(\" \", markdown)))",
     "    return len(_MATH.findall(markdown))",
     "tests/test_site.py::test_count_equations_known_values"),
    ("site-alt-text-without-the-caption", "scoregen_lite.courseware.site", "figure_alt_texts",
     "        if follow:\n            parts.append(follow)",
     "        if follow and not titles:\n            parts.append(follow)",
     "tests/test_site.py::test_figure_alt_texts_from_titles_and_the_following_sentence"),
    # issue 32: the references of the whole-method exercises (01-05) are the package's functions
    ("losses-ssm-missing-half", "scoregen_lite.core.losses", "sliced_score_matching",
     "        return (vjv + 0.5 * norm).mean()",
     "        return (vjv + norm).mean()",
     "tests/test_exercise_builds.py::test_solutions_pass"),
    ("losses-ssm-no-graph-through-the-trace", "scoregen_lite.core.losses", "sliced_score_matching",
     "        grad_vs = torch.autograd.grad(vs, xr, create_graph=True)[0]",
     "        grad_vs = torch.autograd.grad(vs, xr, create_graph=False)[0]",
     "tests/test_exercise_builds.py::test_solutions_pass"),
    ("losses-dsm-missing-half", "scoregen_lite.core.losses", "denoising_score_matching",
     "    return 0.5 * (s - dsm_target(x_tilde, x, sigma)).pow(2).reshape(len(x), -1).sum(1).mean()",
     "    return (s - dsm_target(x_tilde, x, sigma)).pow(2).reshape(len(x), -1).sum(1).mean()",
     "tests/test_exercise_builds.py::test_solutions_pass"),
    ("losses-ncsn-weight-sigma-not-sigma2", "scoregen_lite.core.losses", "ncsn_loss",
     "    return (lam(sig) * _ncsn_per_point(s, z, sig.view(view))).mean()",
     "    return (sig * _ncsn_per_point(s, z, sig.view(view))).mean()",
     "tests/test_exercise_ncsn.py::test_ncsn_loss_reference_passes"),
    ("mcmc-annealed-noise-sqrt-2eps", "scoregen_lite.core.mcmc", "annealed_langevin",
     "        noise_scale = math.sqrt(eps_i)",
     "        noise_scale = math.sqrt(2 * eps_i)",
     "tests/test_exercise_ncsn.py::test_annealed_langevin_reference_passes"),
    ("schedules-measured-snr-missing-half", "scoregen_lite.core.schedules", "measured_update_snr",
     "        signal = 0.5 * eps_i * q.score(x).norm(dim=1).mean().item()",
     "        signal = eps_i * q.score(x).norm(dim=1).mean().item()",
     "tests/test_exercise_ncsn.py::test_measured_update_snr_gaussian_limits"),
    # issue 32: notebook 10's EDM loss, bits/dim references and the denoiser-error measurement
    ('recipes-edm-loss-weight-not-squared', "scoregen_lite.core.recipes", "edm_loss",
     '    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2',
     '    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data)',
     'tests/test_exercise_recipes.py::test_edm_loss_solution_passes'),
    ('recipes-edm-loss-p-std-squared', "scoregen_lite.core.recipes", "edm_loss",
     '    sigma = torch.exp(p_mean + p_std * n)',
     '    sigma = torch.exp(p_mean + p_std**2 * n)',
     'tests/test_exercise_recipes.py::test_edm_loss_solution_passes'),
    ('recipes-bits-point-mass-12-not-24', "scoregen_lite.core.recipes", "bits_point_mass",
     'h**2 / (24 * sigma_min**2 * math.log(2))',
     'h**2 / (12 * sigma_min**2 * math.log(2))',
     'tests/test_recipes.py::test_bits_point_mass_closed_form_and_the_reviewers_numbers'),
    ('recipes-bits-bound-without-its-certificate', "scoregen_lite.core.recipes", "bits_bound",
     '    return {"bound": value - math.log2(certificate), "value": value,',
     '    return {"bound": value, "value": value,',
     'tests/test_recipes.py::test_bits_bound_is_below_both_references_and_tight'),
    ('recipes-denoiser-error-tweedie-sigma-not-sigma2', "scoregen_lite.core.recipes", "denoiser_error",
     '        d_wrong = y + sigma**2 * alpha[:, None] * wrong(x, t)',
     '        d_wrong = y + sigma * alpha[:, None] * wrong(x, t)',
     'tests/test_recipes.py::test_denoiser_error_noise_prediction_grows_with_sigma_edm_is_bounded'),
    # issue 32: RePaint's jump kernel, the EMA window's warm-up, nbgrader without an activated environment
    ("guidance-repaint-jump-ratio-dropped", "scoregen_lite.core.guidance", "inpaint",
     "            std = math.sqrt(max(stds[j] ** 2 - (ratio * stds[i]) ** 2, 0.0))",
     "            std = math.sqrt(max(stds[j] ** 2 - stds[i] ** 2, 0.0))",
     "tests/test_guidance.py::test_repaint_jump_is_the_forward_transition_kernel"),
    ("train-ema-window-warmup-off-by-one", "scoregen_lite.core.train", "ema_weights",
     "    d = torch.clamp(k / (9 + k), max=decay) if warmup else torch.full_like(k, decay)",
     "    d = torch.clamp(k / (10 + k), max=decay) if warmup else torch.full_like(k, decay)",
     "tests/test_ema_window.py::test_ema_weights_are_what_the_ema_class_computes"),
    ("grading-interpreter-bin-not-on-path", "scoregen_lite.courseware.grading", "nbgrader_env",
     '    env["PATH"] = os.pathsep.join([first, *rest])',
     '    env["PATH"] = os.pathsep.join(rest)',
     "tests/test_grading.py::test_nbgrader_env_puts_the_interpreters_bin_first"),
    # issue 32: EDM's churn window and noise, the exercise's top cap, the fair baseline of the speed-up
    ("solvers-churn-window-ignored", "scoregen_lite.core.fast", "churn_etas",
     "        gamma = gamma_max if s_tmin <= s <= s_tmax else 0.0",
     "        gamma = gamma_max",
     "tests/test_windowed_churn.py::test_windowed_churn_by_hand"),
    ("solvers-churn-s-noise-dropped", "scoregen_lite.core.fast", "edm_sampler",
     "            x = x + math.sqrt(s_hat**2 - s_cur**2) * s_noise * randn_like(x, generator)",
     "            x = x + math.sqrt(s_hat**2 - s_cur**2) * randn_like(x, generator)",
     "tests/test_windowed_churn.py::test_windowed_churn_by_hand"),
    ("solvers-churn-noise-std-sigma-hat", "scoregen_lite.core.fast", "edm_sampler",
     "            x = x + math.sqrt(s_hat**2 - s_cur**2) * s_noise * randn_like(x, generator)",
     "            x = x + s_hat * s_noise * randn_like(x, generator)",
     "tests/test_windowed_churn.py::test_windowed_churn_samples_the_target"),
    ("exercise-fast-reference-above-sigma0", "scoregen_lite.exercises.nb08_fast_sampling", "edm_heun_churn_reference",
     "        if not no_top:",
     "        if no_top:",
     "tests/test_exercise_fast.py::test_solution_and_reference_pass"),
    ("results-speedup-footer-against-em500", "scoregen_lite.courseware.sampling_tables", "_speedup_footer",
     "f\"{fmt_value(s['nfe_ratio'], '.1f')}x fewer evaluations",
     "f\"{fmt_value(500 / s['sampler']['nfe'], '.1f')}x fewer evaluations",
     "tests/test_fast_sampling.py::test_fast_sampling_table_footer_uses_the_fair_baseline"),
    # issue 32: the exercise checks accept float32 where it is right and say so where it is not
    ("exercise-em-sampler-float32-times-rejected", "scoregen_lite.exercises.nb06_sdes", "_EM_RTOL",
     "_EM_RTOL = 1e-5",
     "_EM_RTOL = 1e-8",
     "tests/test_exercises.py::test_em_sampler_accepts_float32_times"),
    ("exercise-em-sampler-no-near-miss-digits", "scoregen_lite.exercises.nb06_sdes", "_near_miss",
     "err <= 1e-3 * scale):",
     "err <= 0 * scale):",
     "tests/test_exercises.py::test_em_sampler_near_miss_prints_digits_that_differ"),
    ("exercise-em-step-absolute-tolerance", "scoregen_lite.exercises.nb06_sdes", "check_em_step",
     "want, 1e-6 * float(want.abs().max()), f\"eq. (7)",
     "want, 1e-9, f\"eq. (7)",
     "tests/test_exercises.py::test_em_step_accepts_a_float32_time_and_mistakes_still_fail"),
    ("exercise-edm-loss-float64-cast-accepted", "scoregen_lite.exercises.nb10_training_recipes", "check_edm_loss",
     "got.dtype != torch.float32:",
     "got.dtype == torch.float16:",
     "tests/test_exercise_recipes.py::test_edm_loss_cast_to_float64_is_recognised"),
    ("notation-first-in-where-it-is-taught", "scoregen_lite.courseware.notation", "ABBREVIATIONS",
     '    ("EMA", "exponential moving average of the weights", "02"),',
     '    ("EMA", "exponential moving average of the weights", "07"),',
     "tests/test_notation.py::test_each_abbreviation_is_first_used_where_the_sheet_says"),
]

# helpers some mutants call, appended to the mutated module
EXTRA = {
    "densities-prior-weights-not-responsibilities":
        "\n\ndef log_w_prior(mix, terms):\n    return torch.log(mix.weights.to(terms.dtype))[:, None].expand_as(terms)\n",
}


class MutantTextError(LookupError):
    """A mutant's definition or text is not where the mutant says (missing, or the text is absent or ambiguous)."""


# --- locating a definition and matching text inside it, whatever the whitespace -------------------------

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_WS = r"(?:[ \t\f\r\n]|\\\r?\n)"       # whitespace, or a backslash line continuation


def _children(body):
    """The definitions and assignments directly in ``body``, looking inside if/try/with/for/while blocks
    (a def under ``if TYPE_CHECKING:`` is still this scope's) but not inside other definitions."""
    for node in body:
        if isinstance(node, _DEFS + (ast.Assign, ast.AnnAssign)):
            yield node
        elif not isinstance(node, _DEFS):
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    yield from _children(inner)


def _name_of(node):
    if isinstance(node, _DEFS):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def find_definition(source: str, qualname: str, where: str = "<source>"):
    """The ast node of the function, method, class or assigned name ``qualname`` (dots between nested
    definitions, e.g. ``GaussianMixture.score`` or ``inpaint.replace``; ``<locals>`` parts are skipped).
    Raises MutantTextError, naming ``where``, when it is missing or defined more than once in its scope."""
    parts = [p for p in qualname.split(".") if p != "<locals>"]
    if not parts or not all(p.isidentifier() for p in parts):
        raise MutantTextError(f"qualname {qualname!r} is not a dotted name like 'GaussianMixture.score'")
    node = ast.parse(source, filename=where)
    for depth, part in enumerate(parts):
        if depth and not isinstance(node, _DEFS):
            raise MutantTextError(f"{where}: {'.'.join(parts[:depth])} is an assignment; it has no {part!r} inside")
        found = [child for child in _children(node.body) if part in _name_of(child)]
        scope = ".".join(parts[:depth]) or "the module"
        if not found:
            raise MutantTextError(f"{where}: no function, class or name {part!r} in {scope} (looking for {qualname})")
        if len(found) > 1:
            lines = ", ".join(str(n.lineno) for n in found)
            raise MutantTextError(f"{where}: {part!r} is defined {len(found)} times in {scope} (lines {lines}); "
                                  f"a mutant needs one definition")
        node = found[0]
    return node


def text_pattern(text: str) -> re.Pattern:
    """A regex matching ``text`` (stripped) with any whitespace between its characters, and at least one
    whitespace where the text separates two word characters (``return x`` never matches ``returnx``); a
    text that starts or ends with a word character does not match inside a longer name or number."""
    text = text.strip()
    if not text:
        raise MutantTextError("the text to mutate is empty")
    parts, prev = [], None            # prev: the index of the last non-space character
    for i, char in enumerate(text):
        if char.isspace():
            continue
        if prev is not None:
            gap = text[prev + 1:i]
            words = bool(re.fullmatch(r"\w", text[prev]) and re.fullmatch(r"\w", char))
            if gap and words:
                parts.append(_WS + "+")           # two words stay apart
            elif gap or not words:
                parts.append(_WS + "*")           # spaces may come or go; none inside a name or number
        parts.append(re.escape(char))
        prev = i
    head = r"(?<!\w)" if re.fullmatch(r"\w", text[0]) else ""
    tail = r"(?!\w)" if re.fullmatch(r"\w", text[-1]) else ""
    return re.compile(head + "".join(parts) + tail)


def _line_start(source: str, pos: int) -> int:
    return source.rfind("\n", 0, pos) + 1


def locate(source: str, qualname: str, old: str, where: str = "<source>") -> tuple[int, int]:
    """(start, end) offsets in ``source`` of the one match of ``old`` inside the definition ``qualname``,
    whitespace-insensitively (``text_pattern``). MutantTextError when the definition is missing, or the
    text occurs 0 or more than 1 times inside it (text outside the definition is never matched)."""
    node = find_definition(source, qualname, where)
    lines = source.splitlines(keepends=True)
    first = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
    begin = sum(len(line) for line in lines[:first - 1])
    end = begin + sum(len(line) for line in lines[first - 1:node.end_lineno])
    hits = list(text_pattern(old).finditer(source, begin, end))
    if len(hits) != 1:
        at = f" (lines {', '.join(str(source.count(chr(10), 0, h.start()) + 1) for h in hits)})" if hits else ""
        raise MutantTextError(f"{where}: the text to mutate occurs {len(hits)} times in {qualname}{at}, "
                              f"not once, whitespace aside: {old.strip()!r}")
    return hits[0].span()


def mutate(source: str, qualname: str, old: str, new: str, where: str = "<source>") -> str:
    """``source`` with the one match of ``old`` inside ``qualname`` replaced by ``new`` (see ``locate``).
    The match keeps the indentation it has in the file: when it starts a line, ``new``'s later lines are
    shifted by the difference between that line's indentation and the indentation ``old`` was written
    with. Raises MutantTextError when the mutated source does not parse."""
    start, end = locate(source, qualname, old, where)
    first_line = old.lstrip("\n")
    lead = len(first_line) - len(first_line.lstrip(" \t"))   # the indentation `old` was written with
    col = start - _line_start(source, start)
    shift = col - lead if not source[_line_start(source, start):start].strip() else 0
    new_lines = new.strip().split("\n")
    for k in range(1, len(new_lines)):
        line = new_lines[k]
        if line.strip():
            new_lines[k] = " " * shift + line if shift >= 0 else line[min(-shift, len(line) - len(line.lstrip(" "))):]
    mutated = source[:start] + "\n".join(new_lines) + source[end:]
    try:
        ast.parse(mutated, filename=where)
    except SyntaxError as err:
        raise MutantTextError(f"{where}: the mutated {qualname} does not parse ({err.msg}, line {err.lineno}); "
                              f"fix the mutant's new text {new!r}") from None
    return mutated


def module_file(package_dir: Path, module: str) -> Path:
    """The source file of the dotted ``module`` (``scoregen_lite.core.densities``) in ``package_dir``."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        raise MutantTextError(f"module {module!r} must be dotted under {PACKAGE}, e.g. '{PACKAGE}.core.densities'")
    base = package_dir.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise MutantTextError(f"module {module} not found (no {base}.py nor {base}/__init__.py)")


def _defined_in(package_dir: Path, qualname: str) -> list[str]:
    """The modules of the package that define ``qualname`` (said when a mutant's module lacks it)."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        try:
            find_definition(path.read_text(), qualname)
        except (MutantTextError, SyntaxError):
            continue
        rel = path.relative_to(package_dir).with_suffix("")
        found.append(".".join([PACKAGE, *rel.parts[:-1]] + ([] if rel.name == "__init__" else [rel.name])))
    return found


def mutate_package(package_dir: Path, mutant) -> Path:
    """Plant ``mutant`` in the package copy at ``package_dir``; returns the mutated file. MutantTextError,
    naming the mutant and where its definition now lives, when the mutant no longer fits the code."""
    name, module, qualname, old, new, _ = mutant
    try:
        try:
            path = module_file(package_dir, module)
            src = path.read_text()
            find_definition(src, qualname, module)
        except MutantTextError as err:
            elsewhere = [m for m in _defined_in(package_dir, qualname) if m != module]
            hint = f"; {qualname} is defined in {', '.join(elsewhere)}" if elsewhere else ""
            raise MutantTextError(f"{err}{hint}") from None
        path.write_text(mutate(src, qualname, old, new, module) + EXTRA.get(name, ""))
    except MutantTextError as err:
        raise MutantTextError(f"mutant {name}: {err}; update MUTANTS in tests/test_mutants.py") from None
    return path


# --- the matcher itself -------------------------------------------------------------------------------------

_SAMPLE = """\
import math

def helper(x):
    return math.sqrt(x) * 2.0


class Box:
    def area(self, w, h):
        total = w * h
        return math.sqrt(
            total
        ) * 2.0

    def twice(self, v):
        a = v + 1
        b = v + 1
        return a + b


def outer(n):
    def inner(k):
        if k > 0:
            k = k - 1
            k = k * 2
        return k
    return inner(n)
"""


def _run(source, call):
    scope = {}
    exec(compile(source, "<sample>", "exec"), scope)
    return eval(call, scope)


def test_matcher_finds_a_line_broken_over_several():
    """The mutant is written on one line; the code has it over three (as a formatter might put it)."""
    out = mutate(_SAMPLE, "Box.area", "        return math.sqrt(total) * 2.0", "        return math.sqrt(total) * 3.0")
    assert _run(out, "Box().area(4, 4)") == 12.0
    assert _run(out, "helper(4)") == 4.0            # the same text in another function is untouched
    # spaces around an operator, a backslash continuation
    src = _SAMPLE.replace("return math.sqrt(x) * 2.0", "return math.sqrt( x )*\\\n        2.0")
    assert _run(mutate(src, "helper", "return math.sqrt(x) * 2.0", "return math.sqrt(x) * 5.0"), "helper(4)") == 10.0


def test_matcher_looks_only_inside_the_named_definition():
    with pytest.raises(MutantTextError, match=r"occurs 0 times in outer.inner"):
        locate(_SAMPLE, "outer.inner", "return math.sqrt(x) * 2.0")   # it is in helper
    with pytest.raises(MutantTextError, match=r"no function, class or name 'area' in the module"):
        locate(_SAMPLE, "area", "total = w * h")                      # a method needs its class
    with pytest.raises(MutantTextError, match=r"no function, class or name 'missing' in Box"):
        locate(_SAMPLE, "Box.missing", "total = w * h")
    start, end = locate(_SAMPLE, "Box", "total = w * h")                # a class holds its methods
    assert _SAMPLE[start:end] == "total = w * h"


def test_matcher_refuses_ambiguous_text():
    with pytest.raises(MutantTextError, match=r"occurs 2 times in Box.twice \(lines 15, 16\)"):
        locate(_SAMPLE, "Box.twice", "v + 1")
    assert _SAMPLE[slice(*locate(_SAMPLE, "Box.twice", "b = v + 1"))] == "b = v + 1"


def test_matcher_respects_names_and_keeps_indentation():
    # a word character at either end does not match inside a longer name or number
    with pytest.raises(MutantTextError, match="occurs 0 times"):
        locate(_SAMPLE, "Box.area", "otal = w * h")                   # not the end of `total`
    with pytest.raises(MutantTextError, match="occurs 0 times"):
        locate(_SAMPLE, "Box.area", "math.sqrt(tot")                  # nor the start of it
    with pytest.raises(MutantTextError, match="occurs 0 times"):
        locate(_SAMPLE, "Box.twice", "returna + b")                   # separated words stay separated
    with pytest.raises(MutantTextError, match="occurs 0 times"):
        locate("def f(a):\n    notx = a\n    return notx\n", "f", "not x")   # and joined ones joined
    # a two-line mutant written at 4 spaces is planted at the code's 12, its second line shifted alike
    out = mutate(_SAMPLE, "outer.inner", "    k = k - 1\n    k = k * 2", "    k = k + 1\n    k = k * 3")
    assert "            k = k + 1\n            k = k * 3\n" in out and _run(out, "outer(2)") == 9
    assert mutate(_SAMPLE, "Box.twice", "        b = v + 1\n", "") != _SAMPLE   # a deleted line leaves a blank
    with pytest.raises(MutantTextError, match="does not parse"):
        mutate(_SAMPLE, "helper", "return math.sqrt(x) * 2.0", "return math.sqrt(x * 2.0")


def test_mutant_of_a_missing_definition_says_where_it_went(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "mixture.py").write_text(_SAMPLE)
    (pkg / "core" / "densities.py").write_text("from .mixture import Box\n")
    mutant = ("m", f"{PACKAGE}.core.densities", "Box.area", "total = w * h", "total = w + h", "")
    with pytest.raises(MutantTextError, match=rf"mutant m: .*no function, class or name 'Box'.*"
                                              rf"Box.area is defined in {PACKAGE}.core.mixture; update MUTANTS"):
        mutate_package(pkg, mutant)
    with pytest.raises(MutantTextError, match=r"module scoregen_lite.core.nope not found .*in scoregen_lite.core.mixture"):
        mutate_package(pkg, ("m", f"{PACKAGE}.core.nope", "Box.area", "a", "b", ""))
    path = mutate_package(pkg, ("m", f"{PACKAGE}.core.mixture", "Box.area", "total = w * h", "total = w + h", ""))
    assert "total = w + h" in path.read_text()


# --- the mutants ---------------------------------------------------------------------------------------------

def test_mutants_are_listed_for_every_module():
    modules = {m[1] for m in MUTANTS}
    assert {f"{PACKAGE}.core.{name}" for name in ["mixture", "losses", "schedules", "mcmc", "solvers", "fast", "sde",
                                                  "metrics", "train", "guidance", "recipes"]} <= modules
    assert {f"{PACKAGE}.images.{name}" for name in ["evaluation", "guidance"]} <= modules
    assert len(MUTANTS) >= 75 and len({m[0] for m in MUTANTS}) == len(MUTANTS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_every_mutant_finds_its_text(mutant, tmp_path):
    """Quick: each mutant's definition exists, holds its text once, and the mutated module parses (the slow
    test below then runs the tests that must fail on it)."""
    pkg = tmp_path / PACKAGE
    shutil.copytree(REPO / PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    path = mutate_package(pkg, mutant)
    assert path.read_text() != (REPO / path.relative_to(tmp_path)).read_text()
    for test in mutant[5].split():
        assert (REPO / test.split("::")[0]).is_file(), f"mutant {mutant[0]}: no test file {test}"


WORKERS = 2     # mutants run two at a time, each on one thread (CI has 2 cores)


def _run_mutant(mutant, folder: Path) -> tuple[int, str]:
    """Copy the package into ``folder``, plant the bug, run its tests in one fresh interpreter that first
    checks it imported the mutated copy (exit 17 otherwise); returns (exit code, output)."""
    tests = mutant[5]
    pkg = folder / PACKAGE
    shutil.copytree(REPO / PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    try:
        mutate_package(pkg, mutant)
    except MutantTextError as err:
        return -1, str(err)
    env = dict(os.environ, PYTHONPATH=str(folder) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               SCOREGEN_QUICK="1", SCOREGEN_CACHE=str(folder / "cache"), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               SCOREGEN_SLOW="1",                    # a killing test marked slow must run, not skip
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")   # no nbval, hypothesis, anyio: half of each run's start-up
    # run from the copy's folder: python puts the working directory first on sys.path, so the mutated
    # package is the one imported (checked before any test), and the tests are named by their absolute paths
    args = ["-x", "-q", "-p", "no:cacheprovider", "--rootdir", str(REPO), *(str(REPO / t) for t in tests.split())]
    code = (f"import sys, {PACKAGE}, pytest\n"
            f"if {PACKAGE}.__file__ != {str(pkg / '__init__.py')!r}:\n"
            f"    print('imported', {PACKAGE}.__file__, 'not the mutated copy'); sys.exit(17)\n"
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


@pytest.mark.slow
@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_is_killed(mutant, mutant_runs):
    name = mutant[0]
    rc, out = mutant_runs[name]
    assert rc != -1, out
    assert rc != 17, f"mutant {name}: the mutated copy was not the package imported:\n{out}"
    assert rc == 1, f"mutant {name} survived (or the run broke, rc={rc}):\n" + out

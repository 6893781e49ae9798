"""The vectorised log-space forward filter equals the textbook recursion and hmmlearn's likelihood."""

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.special import logsumexp

from quantlab_assets.compute.regimes.forward_filter import _log_matmul, _log_matmul_exact, forward_filter


def slow_forward(emission: np.ndarray, startprob: np.ndarray, transmat: np.ndarray) -> tuple[np.ndarray, float]:
    """The obvious recursion in probability space, normalised each step: (filtered (T, K), log-likelihood)."""
    filtered, log_likelihood = [], 0.0
    alpha = startprob * emission[0]
    for t in range(len(emission)):
        if t:
            alpha = (filtered[-1] @ transmat) * emission[t]
        log_likelihood += np.log(alpha.sum())
        filtered.append(alpha / alpha.sum())
    return np.array(filtered), log_likelihood


def test_two_states_three_observations_by_hand() -> None:
    startprob = np.array([0.6, 0.4])
    transmat = np.array([[0.9, 0.1], [0.2, 0.8]])
    emission = np.array([[0.5, 0.1], [0.4, 0.3], [0.05, 0.6]])
    # t=0: (0.30, 0.04) -> 0.3/0.34; t=1: predicted (0.8176.., 0.1824..) times emission, and so on.
    alpha0 = np.array([0.30, 0.04])
    predicted1 = (alpha0 / alpha0.sum()) @ transmat
    alpha1 = predicted1 * emission[1]
    predicted2 = (alpha1 / alpha1.sum()) @ transmat
    alpha2 = predicted2 * emission[2]
    expected = np.array([alpha0 / alpha0.sum(), alpha1 / alpha1.sum(), alpha2 / alpha2.sum()])
    result = forward_filter(np.log(emission), np.log(startprob), np.log(transmat))
    np.testing.assert_allclose(result.filtered, expected, rtol=1e-12)
    expected_ll = np.log(alpha0.sum()) + np.log(alpha1.sum()) + np.log(alpha2.sum())
    assert result.log_likelihood[-1] == pytest.approx(expected_ll, rel=1e-12)


@pytest.mark.parametrize("n_obs", [1, 2, 3, 17, 64, 257])
def test_matches_the_slow_recursion_for_every_length(n_obs: int) -> None:
    rng = np.random.default_rng(n_obs)
    n_states = 4
    transmat = rng.dirichlet(np.ones(n_states), size=n_states)
    startprob = rng.dirichlet(np.ones(n_states))
    emission = rng.uniform(0.01, 1.0, size=(n_obs, n_states))
    expected, expected_ll = slow_forward(emission, startprob, transmat)
    result = forward_filter(np.log(emission), np.log(startprob), np.log(transmat))
    np.testing.assert_allclose(result.filtered, expected, rtol=1e-10, atol=1e-14)
    assert result.log_likelihood[-1] == pytest.approx(expected_ll, rel=1e-10)


def test_log_likelihood_equals_hmmlearn_score_and_prefixes_score_prefixes() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, (150, 2)), rng.normal(4, 2, (100, 2)), rng.normal(0, 1, (150, 2))])
    model = GaussianHMM(3, covariance_type="full", n_iter=30, random_state=1).fit(x)
    log_emission = model._compute_log_likelihood(x)  # the emission densities hmmlearn scores with
    result = forward_filter(log_emission, np.log(model.startprob_), np.log(model.transmat_))
    assert result.log_likelihood[-1] == pytest.approx(model.score(x), rel=1e-10)
    assert result.log_likelihood[199] == pytest.approx(model.score(x[:200]), rel=1e-10)
    # The last filtered row is the last smoothed row (nothing lies after it), and only that one in general.
    np.testing.assert_allclose(result.filtered[-1], model.predict_proba(x)[-1], atol=1e-8)


def test_impossible_transitions_and_extreme_emissions_stay_exact() -> None:
    transmat = np.array([[0.95, 0.05, 0.0], [0.0, 0.9, 0.1], [0.2, 0.0, 0.8]])
    startprob = np.array([1.0, 0.0, 0.0])
    rng = np.random.default_rng(5)
    # log densities 2,000 nats apart: the shifted products underflow and must be recomputed term by term.
    log_emission = rng.normal(0, 1, (300, 3)) - 2000.0 * rng.integers(0, 2, (300, 3))
    with np.errstate(divide="ignore"):
        log_startprob, log_transmat = np.log(startprob), np.log(transmat)
        result = forward_filter(log_emission, log_startprob, log_transmat)
        # The recursion one step at a time in log space (probability space underflows here).
        log_alpha = log_startprob + log_emission[0]
        expected = [log_alpha - logsumexp(log_alpha)]
        for t in range(1, len(log_emission)):
            log_alpha = logsumexp(expected[-1][:, None] + log_transmat, axis=0) + log_emission[t]
            expected.append(log_alpha - logsumexp(log_alpha))
    assert np.isfinite(result.filtered).all()
    np.testing.assert_allclose(result.filtered, np.exp(expected), atol=1e-12)


def test_fast_log_product_equals_the_exact_one() -> None:
    rng = np.random.default_rng(11)
    left, right = rng.normal(0, 300, (50, 4, 4)), rng.normal(0, 300, (50, 4, 4))
    left[0, 1, :] = -np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(_log_matmul(left, right), _log_matmul_exact(left, right), rtol=1e-12)


def test_empty_sequence() -> None:
    result = forward_filter(np.empty((0, 2)), np.log([0.5, 0.5]), np.log([[0.5, 0.5], [0.5, 0.5]]))
    assert result.filtered.shape == (0, 2) and result.log_likelihood.shape == (0,)

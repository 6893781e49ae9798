"""The forward algorithm of a hidden Markov model, in log space, vectorised over time.

The filtered probability P(state_t | x_1..x_t) reads observations up to t only; hmmlearn's
`predict`/`predict_proba` return the smoothed P(state_t | x_1..x_T), which reads the future, so the
regime models never use them for outputs.

The recursion alpha_t(j) = sum_i alpha_(t-1)(i) A(i, j) b_t(j) is a product of matrices
M_t(i, j) = A(i, j) b_t(j), which is associative: a Hillis-Steele prefix scan computes every prefix
product in ceil(log2 T) vectorised steps, each one batched log-semiring matrix product
(log-sum-exp over the inner index). Memory: a (T, K, K, K) temporary per step (8 MB for T = 8,000,
K = 5). In log space nothing underflows; the prefix log-likelihoods grow like -T, so the filtered
log-probabilities carry an absolute rounding error of about 1e-16 * |log-likelihood|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

# Products of shifted exponentials below this may have lost terms to underflow (see _log_matmul).
UNDERFLOW_GUARD = 1e-250


@dataclass(frozen=True)
class ForwardPass:
    """log_filtered: (T, K) log P(state_t | x_1..x_t); log_likelihood: (T,) log p(x_1..x_t)."""

    log_filtered: np.ndarray
    log_likelihood: np.ndarray

    @property
    def filtered(self) -> np.ndarray:
        """(T, K) probabilities, renormalised: exp of the log-space values can sum to 1 +- 1e-12."""
        probabilities = np.exp(self.log_filtered)
        return probabilities / probabilities.sum(axis=1, keepdims=True)


def _log_matmul_exact(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """out[..., i, j] = logsumexp_k(left[..., i, k] + right[..., k, j]), term by term (K^3 exponentials)."""
    terms = left[..., :, :, None] + right[..., None, :, :]  # (..., i, k, j)
    peak = terms.max(axis=-2)
    # A zero-probability transition is -inf: an all -inf sum stays -inf instead of becoming NaN.
    shift = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(terms - shift[..., None, :]).sum(axis=-2)) + shift


def _log_matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Batched log-semiring product, as _log_matmul_exact but with 2 K^2 exponentials and a matmul.

    Shifting each row of `left` and each column of `right` by its maximum keeps every exponential <= 1;
    a product can still underflow when the two maxima sit at different k and everything else is
    > ~700 nats smaller, so the few products below UNDERFLOW_GUARD are recomputed term by term.
    """
    row_peak = left.max(axis=-1, keepdims=True)  # (..., K, 1)
    col_peak = right.max(axis=-2, keepdims=True)  # (..., 1, K)
    row_shift = np.where(np.isfinite(row_peak), row_peak, 0.0)
    col_shift = np.where(np.isfinite(col_peak), col_peak, 0.0)
    product = np.exp(left - row_shift) @ np.exp(right - col_shift)
    with np.errstate(divide="ignore"):
        out = np.log(product) + row_shift + col_shift
    fragile = (product < UNDERFLOW_GUARD).any(axis=(-2, -1))
    if fragile.any():
        out[fragile] = _log_matmul_exact(left[fragile], right[fragile])
    return out


def log_prefix_products(log_matrices: np.ndarray) -> np.ndarray:
    """(T, K, K) -> (T, K, K): entry t is the log-semiring product M_0 M_1 ... M_t (inclusive scan)."""
    prefix = log_matrices.copy()
    step = 1
    while step < prefix.shape[0]:
        prefix[step:] = _log_matmul(prefix[:-step], prefix[step:])
        step *= 2
    return prefix


def forward_filter(log_emission: np.ndarray, log_startprob: np.ndarray, log_transmat: np.ndarray) -> ForwardPass:
    """Filtered state probabilities and prefix log-likelihoods of one observation sequence.

    log_emission: (T, K) log b_t(k) = log p(x_t | state k); log_startprob: (K,); log_transmat: (K, K),
    rows the state at t - 1. T may be 0.
    """
    n_obs, n_states = log_emission.shape
    if log_startprob.shape != (n_states,) or log_transmat.shape != (n_states, n_states):
        raise ValueError("forward_filter: startprob (K,) and transmat (K, K) must match the emission's K")
    if n_obs == 0:
        return ForwardPass(np.empty((0, n_states)), np.empty(0))
    log_alpha = np.empty((n_obs, n_states))
    log_alpha[0] = log_startprob + log_emission[0]
    if n_obs > 1:
        steps = log_transmat[None, :, :] + log_emission[1:, None, :]  # (T-1, K, K): M_t(i, j)
        prefix = log_prefix_products(steps)
        log_alpha[1:] = logsumexp(log_alpha[0][None, :, None] + prefix, axis=1)
    log_likelihood = logsumexp(log_alpha, axis=1)
    return ForwardPass(log_alpha - log_likelihood[:, None], log_likelihood)

"""Training losses beyond `fit`'s squared error: a pairwise ranking term for tasks scored on
Kendall τ."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pairwise_logistic(scores: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
  """RankNet's pairwise logistic loss (Burges et al. 2005) over the pairs of one batch.

  For every ordered pair (i, j) of real samples (`mask`) with `targets[i] > targets[j]`, the
  loss is `softplus(scores[j] - scores[i])` (the negative log-likelihood that i ranks above
  j); the result is their mean (0 when the batch has no such pair). Ties add nothing. Every
  discordant pair weighs the same, as in Kendall τ, so pairs inside a dense cluster of
  targets count as much as pairs far apart. Jittable; any leading shape is flattened (a
  data-parallel batch stacked `[n_data, n]` pairs across its sub-batches).

  Args:
    scores: the model's outputs before any monotone squashing (e.g. pre-sigmoid logits).
    targets: the targets, the same shape.
    mask: which entries are real samples (padding is False), the same shape.

  Returns:
    A scalar.
  """
  scores, targets, mask = (jnp.reshape(a, -1) for a in (scores, targets, mask))
  above = (targets[:, None] > targets[None, :]) & mask[:, None] & mask[None, :]
  terms = jax.nn.softplus(scores[None, :] - scores[:, None])
  return jnp.sum(jnp.where(above, terms, 0.0)) / jnp.maximum(jnp.sum(above), 1)

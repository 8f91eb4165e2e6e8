"""GraphSet's one padding budget for sets of several architecture sizes: a mix of small and
large networks packs into fewer padded slots than the worst case, and its batches still hold
every graph once, in order, within the budget."""

import flax.linen as nn
import jax
import numpy as np
import pytest

import gmn_jax
from gmn_jax.metanets.batching import budget_for
from gmn_jax.training.graph_set import GraphSet


class _MLP(nn.Module):
  widths: tuple[int, ...]

  @nn.compact
  def __call__(self, x):
    for w in self.widths[:-1]:
      x = nn.relu(nn.Dense(w)(x))
    return nn.Dense(self.widths[-1])(x)


def _graph_set(architectures: dict[tuple[int, ...], int], packing_slack=1.25) -> GraphSet:
  """`members` MLPs of each `widths`, on 4 inputs."""
  x = np.zeros((1, 4), np.float32)
  templates, stacked, template_of, row_of = [], [], [], []
  for t, (widths, members) in enumerate(architectures.items()):
    model = _MLP(widths)
    variables = jax.vmap(lambda k, model=model: model.init(k, x))(
        jax.random.split(jax.random.key(t), members))
    pg = gmn_jax.trace(model, jax.tree.map(lambda a: a[0], variables), x)
    templates.append(pg)
    stacked.append(jax.vmap(pg.encode)(variables))
    template_of.append(np.full(members, t))
    row_of.append(np.arange(members))
  n = sum(architectures.values())
  return GraphSet(templates, stacked, np.concatenate(template_of), np.concatenate(row_of),
                  np.linspace(0, 1, n), packing_slack)


def test_mixed_sizes_pack_into_a_smaller_budget_and_keep_every_graph_once():
  data = _graph_set({(4, 2): 30, (32, 32, 2): 4})  # 24 and 1,216 edges
  order = np.r_[0:5, 30:34, 5:30]  # the four large ones in one run of 8 would overflow
  worst = budget_for(data.templates, 8)
  assert _graph_set({(4, 2): 30, (32, 32, 2): 4}, packing_slack=None).budget(8) == worst
  budget = data.budget(8)
  assert budget.n_edge < worst.n_edge / 2 and budget.n_node < worst.n_node
  assert budget._replace(n_node=0, n_edge=0) == worst._replace(n_node=0, n_edge=0)
  for shards in (1, 2):
    steps = data.steps(order, 8, budget, shards)
    runs = [run for step in steps for run in step]
    np.testing.assert_array_equal(np.concatenate(runs), order)  # all, once, in order
    assert any(len(run) < 8 // shards for run in runs[:-1])  # some batches closed early
    batches = list(data.batches(order, 8, budget, shards=shards))
    assert len(batches) == len(steps) and all(len(step) <= shards for step in steps)
    for (graphs, targets, mask), step in zip(batches, steps):
      masks = mask.reshape(shards, -1)
      for s, run in enumerate(step):
        assert masks[s].sum() == len(run) <= 8 // shards
        np.testing.assert_array_equal(targets.reshape(shards, -1)[s][:len(run)],
                                      data.targets[run])
        sizes = np.asarray(graphs.n_edge).reshape(shards, -1)[s][:len(run)]
        assert sizes.sum() <= budget.n_edge
      assert masks[len(step):].sum() == 0  # a short last step: the other shards are padding


def test_one_size_keeps_the_worst_case_budget_and_full_batches():
  data = _graph_set({(8, 2): 20})
  assert data.budget(8) == budget_for(data.templates, 8)
  steps = data.steps(np.arange(20), 8, data.budget(8))
  assert [len(step[0]) for step in steps] == [8, 8, 4]


def test_a_graph_larger_than_the_budget_is_refused():
  data = _graph_set({(4, 2): 3, (32, 32, 2): 1})
  small = budget_for(data.templates[:1], 2)
  with pytest.raises(ValueError, match='sample 3 .* larger than the budget'):
    data.steps(np.arange(4), 2, small)

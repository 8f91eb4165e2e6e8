"""GMN's edge pass in blocks (`GMN(edge_chunk=...)`): the settings it refuses. That it equals
the one-pass GMN, on one device and on edge shards, is tested in `sharded_on_devices.py` (one
4-device process, one reference computation)."""

import jax
import pytest

import gmn_jax
from gmn_jax.metanets.edge_chunks import round_edges
from tests.support import tiny_metanets as metanets

CHUNK = 32


def _batch():
  graphs = [metanets.case(metanets.FAMILIES[f]) for f in ('cnn_bn', 'resnet')]
  budget = gmn_jax.budget_for([pg for pg, _ in graphs], 2)
  return gmn_jax.batch([pg.encode(v) for pg, v in graphs], round_edges(budget, CHUNK))


def test_chunks_that_cannot_be_accumulated_or_scanned_or_do_not_divide_are_refused():
  graphs = _batch()
  with pytest.raises(ValueError, match='cannot be accumulated'):
    jax.eval_shape(gmn_jax.GMN(node_dim=4, edge_dim=4, num_layers=1, aggregation='pna',
                               edge_chunk=CHUNK).init, jax.random.key(0), graphs)
  n_edge = graphs.senders.shape[0]
  shards = next(s for s in range(2, 10) if n_edge % (CHUNK * s))
  with pytest.raises(ValueError, match=rf'round_edges\(budget, {CHUNK * shards}\)'):
    jax.eval_shape(gmn_jax.GMN(node_dim=4, edge_dim=4, num_layers=1, edge_chunk=CHUNK,
                               edge_shards=shards).init, jax.random.key(0), graphs)
  with pytest.raises(ValueError, match='edge_chunk and scan_layers cannot be combined'):
    jax.eval_shape(gmn_jax.GMN(node_dim=4, edge_dim=4, num_layers=2, edge_chunk=CHUNK,
                               scan_layers=True).init, jax.random.key(0), graphs)

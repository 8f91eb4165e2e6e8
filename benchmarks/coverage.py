"""Coverage: every Flax model family of transformers 4.x, traced as its own wrapper calls it.

Each family is built from a tiny random config (nothing is downloaded), called the way its
`FlaxPreTrainedModel.__call__` calls its module (`model(inputs..., params=params)`), and traced
with `gmn_jax.trace_function`, whose symmetry safety net runs by default. One row per model:

  traces   the trace succeeds as given (with the safety net: 2 drawn symmetries preserve every
           output on the example and on random inputs with perturbed parameters)
  exact    decode(encode(v)) == v bit for bit
  slots    each parameter scalar sits in exactly one graph slot
  sym      3 more drawn symmetries preserve the output (relative change < 1e-4) and at least
           one moves a neuron
  error    the first error where a check fails

Run: `python -m benchmarks.coverage [--only bert,gpt2] [--bert-base [--safety-net]
[--no-families]]` (needs the `hf` extra: `pip install 'gmn-jax[hf]'`). `--bert-base` first
times trace + template of a 12-layer BERT-base-sized model with random weights (see
`bert_base_seconds`). Timings on a loaded shared CPU are inflated.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import gmn_jax

_TINY = dict(
    hidden_size=16, d_model=16, n_embd=16, embed_dim=16, num_hidden_layers=2, n_layer=2,
    num_layers=2, encoder_layers=1, decoder_layers=1, num_decoder_layers=1,
    num_attention_heads=2, n_head=2, num_heads=2, encoder_attention_heads=2,
    decoder_attention_heads=2, intermediate_size=32, ffn_dim=32, encoder_ffn_dim=32,
    decoder_ffn_dim=32, d_ff=32, d_kv=8, head_dim=8, vocab_size=99, max_position_embeddings=64,
    n_positions=64, num_key_value_heads=1, embedding_size=16, image_size=32, patch_size=8,
    num_channels=3, rotary_dim=4, hidden_sizes=[8, 16], depths=[1, 1], n_inner=32,
    word_embed_proj_dim=16, num_mel_bins=8, max_source_positions=32, max_target_positions=32,
    conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2, attention_types=[[['global', 'local'], 1]],
    window_size=4, block_size=4, num_random_blocks=1, attention_type='original_full',
    projection_dim=16, relative_attention_num_buckets=8, pad_token_id=0,
    decoder_start_token_id=0)
_VISION = {'beit', 'dinov2', 'vit', 'resnet', 'regnet'}
_SEQ2SEQ = {'bart', 'blenderbot', 'blenderbot-small', 'marian', 'mbart', 'pegasus', 't5',
            'mt5', 'longt5'}


@contextlib.contextmanager
def _clip_keywords():
  """transformers 4.x's T5-family code calls `jnp.clip(x, a_max=...)`, keywords current JAX
  removed: a bug of the model code, not of tracing. Maps them to `min`/`max` while a model is
  built and traced, so those families are measured on what the tracer does."""
  clip = jnp.clip

  def compat(x, min=None, max=None, a_min=None, a_max=None):  # pylint: disable=redefined-builtin
    return clip(x, a_min if min is None else min, a_max if max is None else max)
  jnp.clip = compat
  try:
    yield
  finally:
    jnp.clip = clip


def _config(model_type: str):
  from transformers import AutoConfig  # pylint: disable=g-import-not-at-top
  config = AutoConfig.for_model(model_type)
  for key, value in _TINY.items():
    if hasattr(config, key):
      setattr(config, key, value)
  if model_type == 'clip':
    from transformers import CLIPConfig  # pylint: disable=g-import-not-at-top
    tiny = {k: v for k, v in _TINY.items() if k not in ('embed_dim',)}
    config = CLIPConfig(text_config=tiny, vision_config=tiny, projection_dim=16)
  if model_type == 'wav2vec2':
    # transformers' Flax Wav2Vec2 implements only the stable-layer-norm variant (the
    # large/lv60 checkpoints'); the default config is the PyTorch-only base layout.
    config.do_stable_layer_norm, config.feat_extract_norm = True, 'layer'
    config.num_feat_extract_layers = len(config.conv_dim)  # derived in __init__ only
  return config


def _inputs(model_type: str):
  rng = np.random.default_rng(0)
  ids = jnp.asarray(rng.integers(2, 99, (1, 8)), jnp.int32)
  pixels = jnp.asarray(rng.standard_normal((1, 3, 32, 32)), jnp.float32)
  if model_type in _VISION:
    return (pixels,), {}
  if model_type in ('clip', 'vision-text-dual-encoder'):
    return (ids, pixels), {}
  if model_type == 'wav2vec2':
    return (jnp.asarray(rng.standard_normal((1, 400)), jnp.float32),), {}
  if model_type == 'whisper':
    return (jnp.asarray(rng.standard_normal((1, 8, 64)), jnp.float32), ids), {}
  if model_type in _SEQ2SEQ:
    return (ids, ids), {}
  return (ids,), {}


def _build(model_type: str):
  from transformers import FlaxAutoModel  # pylint: disable=g-import-not-at-top
  if model_type == 'vision-text-dual-encoder':  # a CLIP vision tower with a BERT text tower
    from transformers import (BertConfig, CLIPVisionConfig, FlaxVisionTextDualEncoderModel,  # pylint: disable=g-import-not-at-top
                              VisionTextDualEncoderConfig)
    tiny = lambda cls: cls(**{k: v for k, v in _TINY.items() if hasattr(cls(), k)})
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        tiny(CLIPVisionConfig), tiny(BertConfig), projection_dim=16)
    return FlaxVisionTextDualEncoderModel(config, seed=0)
  return FlaxAutoModel.from_config(_config(model_type), seed=0)


def check(model_type: str) -> dict:
  """Builds, traces and checks one family; returns its row."""
  row = dict(model=model_type, traces=False, exact=False, slots=False, sym=False, error='')
  try:
    with _clip_keywords():
      _check(model_type, row)
  except Exception as e:  # pylint: disable=broad-except  (a row per model, whatever fails)
    row['error'] = f'{type(e).__name__}: {str(e).splitlines()[0][:150]}'
  return row


def _check(model_type: str, row: dict):
  """Fills `row` (see `check`)."""
  model = _build(model_type)
  arrays, _ = _inputs(model_type)
  variables = {'params': model.params}
  if model_type in _SEQ2SEQ:
    call = lambda v, ids, dec: model(ids, decoder_input_ids=dec, params=v['params'])
  elif model_type == 'whisper':
    call = lambda v, feats, dec: model(feats, decoder_input_ids=dec, params=v['params'])
  else:
    call = lambda v, *a: model(*a, params=v['params'])
  start = time.perf_counter()
  pg = gmn_jax.trace_function(call, variables, *arrays)
  row['seconds'] = time.perf_counter() - start
  row['traces'] = True
  decoded = pg.decode(pg.encode(variables))
  row['exact'] = all(np.array_equal(a, b) for a, b in
                     zip(jax.tree.leaves(decoded), jax.tree.leaves(variables)))
  row['slots'] = bool(np.array_equal(np.sort(pg.slot_of), np.unique(pg.slot_of))
                      and len(pg.slot_of) == pg.n_params)
  fn = jax.jit(lambda v: jax.tree.leaves(call(v, *arrays)))
  ref, moved, worst = fn(variables), 0, 0.0
  for seed in range(10, 13):
    sym = pg.random_symmetry(seed)
    out = fn(sym.apply(variables))
    for a, b in zip(ref, out):
      if jnp.issubdtype(a.dtype, jnp.floating):
        worst = max(worst, float(jnp.abs(a - b).max() / (jnp.abs(a).max() + 1e-6)))
    moved += int((sym.node_perm != np.arange(pg.n_node)).sum())
  row['sym'] = worst < 1e-4 and moved > 0
  if not row['sym']:
    row['error'] = f'symmetry: relative change {worst:.2g}, neurons moved {moved}'


def bert_base_seconds(safety_net: bool = False, report=lambda line: None) -> dict[str, float]:
  """Trace + template of a 12-layer BERT-base-sized `FlaxBertModel` (hidden 768, 12 heads,
  intermediate 3072; `BertConfig()`'s sizes) with random weights, nothing downloaded.

  The weights are drawn with numpy into the shapes the class expects (`_do_init=False`: the
  library's own initialiser compiles for minutes on CPU and is not what is measured). Returns
  seconds: `trace` (jaxpr + interpretation + the `ParameterGraph` template: layout, symmetry
  constraints) and `trace cpu` (its process CPU time: on a loaded machine, wall time is
  inflated, CPU time much less), `encode` (one `pg.encode` of the weights), and with
  `safety_net` the default `trace_function` (2 drawn symmetries checked numerically on top).
  `report` gets each summary line as soon as it is measured (an out-of-memory kill during the
  safety net keeps the trace line).
  """
  from transformers import BertConfig, FlaxBertModel  # pylint: disable=g-import-not-at-top
  model = FlaxBertModel(BertConfig(), _do_init=False)
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: (0.02 * rng.standard_normal(s.shape)).astype(s.dtype),
                        model.params_shape_tree)
  variables = {'params': params}
  ids = jnp.asarray(2 + np.arange(16)[None] % 100, jnp.int32)
  call = lambda v, i: model(i, params=v['params'])
  times = {}
  start, cpu = time.perf_counter(), time.process_time()
  pg = gmn_jax.trace_function(call, variables, ids, check_symmetries=0)
  times['trace'], times['trace cpu'] = time.perf_counter() - start, time.process_time() - cpu
  start = time.perf_counter()
  jax.block_until_ready(pg.encode(variables))
  times['encode'] = time.perf_counter() - start
  times['edges'], times['params'] = pg.n_edge, pg.n_params
  del pg
  report(f'BERT-base (12 layers, hidden 768, {times["params"]:,} parameters, '
         f'{times["edges"]:,} edges, random weights): trace + template {times["trace"]:.1f} s '
         f'(CPU {times["trace cpu"]:.1f} s), encode {times["encode"]:.1f} s')
  if safety_net:  # reported apart: it runs the model and draws symmetries (more memory)
    start = time.perf_counter()
    gmn_jax.trace_function(call, variables, ids)
    times['trace with safety net'] = time.perf_counter() - start
    report(f'BERT-base trace with the safety net: {times["trace with safety net"]:.1f} s')
  return times


def main():
  from transformers.models.auto.modeling_flax_auto import FLAX_MODEL_MAPPING_NAMES  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--only', default='', help='comma-separated model types')
  parser.add_argument('--bert-base', action='store_true', help='also time trace + template of a '
                      '12-layer BERT-base-sized model (random weights)')
  parser.add_argument('--safety-net', action='store_true', help='with --bert-base, also time '
                      'the default trace (symmetry safety net on)')
  parser.add_argument('--no-families', action='store_true', help='skip the per-family table')
  args = parser.parse_args()
  if args.bert_base:  # first, on a fresh process: the number docs/parameter_graph.md quotes
    bert_base_seconds(args.safety_net, report=lambda line: print(line, flush=True))
    if args.no_families:
      return
  families = sorted(FLAX_MODEL_MAPPING_NAMES)
  if args.only:
    families = [f for f in families if f in args.only.split(',')]
  print(f'{"model":26s} traces exact slots sym  error', flush=True)
  rows = []
  for family in families:
    row = check(family)
    rows.append(row)
    flag = lambda k: ' yes ' if row[k] else ' no  '
    print(f'{family:26s} {flag("traces")}  {flag("exact")}{flag("slots")}{flag("sym")}'
          f'{row["error"]}', flush=True)
  passed = sum(r['traces'] and r['exact'] and r['slots'] and r['sym'] for r in rows)
  print(f'coverage: {passed}/{len(rows)} transformers Flax families pass every check '
        f'({100 * passed / max(len(rows), 1):.0f}%)')


if __name__ == '__main__':
  main()

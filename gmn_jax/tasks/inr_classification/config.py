"""The INR classification task's config (`InrClassificationConfig`) and its presets."""

from __future__ import annotations

import dataclasses
from typing import Any

from gmn_jax.tasks.inr_classification.methods import DEFAULT_METHODS, REGISTRY
from gmn_jax.tasks.registry import check_methods
from gmn_jax.training.fit import TrainConfig
from gmn_jax.zoos.inr import zoo as inr_zoo_lib


NORMALIZATIONS = ('auto', 'dataset', 'graph', 'none')
READOUT_POOLS = ('auto', 'all', 'output')
VALUE_ENCODINGS = ('octaves', 'fourier')


@dataclasses.dataclass(frozen=True)
class InrClassificationConfig:
  """Everything one INR classification run depends on.

  Attributes:
    zoo: the INR zoo to fit (or reuse from `workdir/zoo`).
    test_fraction, val_fraction: shares of the images held out for testing and validation.
    methods: keys of `methods.REGISTRY` to train.
    probes: K, the learned probe coordinates of the `*_probes` methods: every INR is run at
      them inside the model and each neuron's K activations join its features
      (`LearnedProbes`, as Kofinas et al. 2024 §3), so the output neuron sees K pixel values.
    hidden: node and edge width of GMN and NG-GNN (NG-T: node `2 * hidden`, edge `hidden`).
    layers: message-passing layers of the graph metanetworks.
    normalization: how graph metanetworks standardise each layer's values before encoding
      them: `'dataset'` with the training split's per-layer mean and standard deviation (as
      neural graphs), `'graph'` with each INR's own (which divides out the scale of each of
      its layers and zeroes its single output bias), `'none'`; `'auto'`: `'dataset'` for the
      weights-only graph metanetworks (GMN, NG-GNN, NG-T; ScaleGMN reads raw values whatever
      this says), `'graph'` for those with probes. The baselines (DeepSets, StatNN, the flat
      MLP) always standardise with the training split's statistics.
    standardize_readout: GMN, NG-GNN and NG-T standardise their readout MLP's input per
      feature with its statistics over (up to 512) training INRs at initialisation
      (`fit_readout_statistics`).
    readout_pool: what the invariant readout of GMN, NG-GNN and NG-T reads
      (`Metanetwork.readout_pool`): `'output'`, the output neuron's vector alone (as neural
      graphs); `'all'`, per-INR means of the vectors of each kind of neuron and of the edges;
      `'auto'`: `'output'` for the weights-only methods, `'all'` for those with probes.
    value_encoding: how the graph metanetworks encode each weight and bias value:
      `'octaves'`, the encoder's 12 octave frequencies (`GraphEncoder`'s default);
      `'fourier'`, 128 Gaussian random frequencies of scale 3 sqrt 2: per direction, what
      neural graphs' encoding of an edge as (w, 0, w) forward and (0, w, w) backward gives
      (`value_features='fourier'`; on the weights-only NG-GNN it matched the octaves at the
      default budget, so it is not the default).
    train: optimisation settings shared by every method (cross-entropy).
    seed: of the split.
  """

  # 40 full-batch fitting steps instead of the zoo's 50: a shorter default run.
  zoo: inr_zoo_lib.InrZooConfig = dataclasses.field(
      default_factory=lambda: inr_zoo_lib.InrZooConfig(steps=40))
  test_fraction: float = 0.2
  val_fraction: float = 0.1
  methods: tuple[str, ...] = DEFAULT_METHODS
  probes: int = 16
  hidden: int = 32
  layers: int = 2
  normalization: str = 'auto'
  standardize_readout: bool = False
  readout_pool: str = 'auto'
  value_encoding: str = 'octaves'
  train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
      epochs=4, batch_size=32, learning_rate=3e-3, loss='cross_entropy'))
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'methods', check_methods(self.methods, REGISTRY))
    if self.normalization not in NORMALIZATIONS:
      raise ValueError(f'unknown normalization {self.normalization!r}; choose from '
                       f'{NORMALIZATIONS}')
    if self.readout_pool not in READOUT_POOLS:
      raise ValueError(f'unknown readout_pool {self.readout_pool!r}; choose from '
                       f'{READOUT_POOLS}')
    if self.value_encoding not in VALUE_ENCODINGS:
      raise ValueError(f'unknown value_encoding {self.value_encoding!r}; choose from '
                       f'{VALUE_ENCODINGS}')
    if self.train.loss != 'cross_entropy':
      raise ValueError("INR classification trains with TrainConfig(loss='cross_entropy')")

  @classmethod
  def default(cls) -> 'InrClassificationConfig':
    """The main run: INRs of 5,000 MNIST digits, the default methods."""
    return cls()

  @classmethod
  def tiny(cls) -> 'InrClassificationConfig':
    """The test suite's (and the notebook's) config: INRs of 240 8x8 digits, a one-layer
    NG-GNN with learned probes against StatNN, 5 epochs of batches of 8: two compiled
    training programs, seconds."""
    return cls(zoo=inr_zoo_lib.InrZooConfig.tiny(), methods=('nggnn_probes', 'statnn'),
               hidden=16, layers=1, test_fraction=0.25, val_fraction=0.15,
               train=TrainConfig(epochs=5, batch_size=8, learning_rate=3e-3,
                                 loss='cross_entropy'))

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out['zoo'] = self.zoo.to_json()
    return out

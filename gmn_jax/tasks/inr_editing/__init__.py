"""INR editing (Lim et al. 2024, Sec. 5.3; Kofinas et al. 2024, Sec. 5.2): from the weights of
an INR of an image, predict the weights of an INR of the edited image.

`train_and_evaluate(config, workdir)` fits (or reuses) an INR zoo, traces its SIREN once,
encodes every INR, splits by image (train / validation / test), and trains each method to
minimise the pixel MSE between the rendered edited INR and the edited image (`image_edits`):

- 'identity': the unedited INR (no training; the floor every method must beat);
- 'flat_mlp': `FlatEditor`, an MLP on the flat weights predicting delta;
- 'gmn', 'nggnn', 'ngt': `Editor` over GMN, NG-GNN, NG-T (equivariant);
- 'gmn_index': the same GMN editor, with each neuron's index as a feature (not equivariant).

Every method's test MSE is measured at its best validation epoch, on held-out images. Writes
`results.json`, `results.md`, `predictions.npz` (per-INR test MSE of every method),
`edits.png` (original, target, each method's edit on held-out images) and
`learning_curves.png`. Finished methods are kept in `workdir/methods/` and not retrained when
the run is started again; a method killed mid-training resumes at its last finished epoch
(its train state is checkpointed every epoch in `workdir/methods/<method>/`).
All MSEs are on the zoo convention's pixel range ([0, 1] for DWSNets; [-1, 1] for NFN, where
the same error gives 4x the MSE).

Modules: `config`, `methods` (the registry), `image_edits` (the targets), `data`
(`EditingData`, `split_by_image`), `train` (`train_method`), `run`, `report`.
"""

from gmn_jax.tasks.inr_editing import image_edits, report
from gmn_jax.tasks.inr_editing.config import EditingConfig
from gmn_jax.tasks.inr_editing.data import EditingData, split_by_image
from gmn_jax.tasks.inr_editing.methods import LABELS, METHODS, REGISTRY
from gmn_jax.tasks.inr_editing.run import train_and_evaluate
from gmn_jax.tasks.inr_editing.train import train_method

Config = EditingConfig

__all__ = ['LABELS', 'METHODS', 'REGISTRY', 'Config', 'EditingConfig', 'EditingData',
           'image_edits', 'report', 'split_by_image', 'train_and_evaluate', 'train_method']

"""End to end: `python -m experiments.inr_classification --tiny` fits INRs of 8x8 digits,
splits by image and its NG-GNN with learned probe features beats chance on held-out images' INRs; the report is complete."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import inr_classification as experiment
from gmn_jax.tasks.inr_classification import InrClassificationConfig, split_by_image
from gmn_jax.zoos.inr.zoo import load_inr_zoo


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp('inr_classification')
  experiment.main(['--tiny', '--workdir', str(path)])
  return path


@pytest.mark.slow  # the end-to-end run
def test_graph_metanetwork_beats_chance_on_held_out_images(workdir):
  results = json.loads((workdir / 'results.json').read_text())
  ngnn = results['methods']['nggnn_probes']['test']
  assert results['rows']['test'] == 60 and results['chance'] < 0.2
  # 10 classes: guessing scores 10%; measured NG-GNN + probes 26.7% (validation 41.7%),
  # StatNN 6.7% (majority class 18.3%).
  assert ngnn['accuracy'] > max(0.2, results['chance'])
  assert ngnn['accuracy'] > results['methods']['statnn']['test']['accuracy']
  assert results['zoo']['psnr_mean'] > 28
  saved = np.load(workdir / 'predictions.npz')
  assert np.mean(saved['logits/nggnn_probes'].argmax(1) == saved['label']) == ngnn['accuracy']
  assert results['confusion']['method'] == 'nggnn_probes'
  assert np.trace(results['confusion']['matrix']) == round(ngnn['accuracy'] * 60)
  for name in ('results.md', 'confusion.png', 'inrs.png', 'learning_curves.png'):
    assert (workdir / name).stat().st_size > 0


@pytest.mark.slow  # the end-to-end run
def test_split_never_shares_an_image(workdir):
  zoo = load_inr_zoo(workdir / 'zoo')
  config = InrClassificationConfig.tiny()
  parts = [set(zoo.records['image'][rows].tolist()) for rows in split_by_image(config, zoo)]
  assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
  assert sum(map(len, parts)) == len(zoo.images)


@pytest.mark.slow  # 14-24 s: keeps the fast tier within its 10 minutes
def test_data_set_normalisation_and_readout_statistics_come_from_the_training_rows():
  """`build_model` with normalization='dataset' and standardize_readout: the model holds the
  training rows' per-layer statistics and its readout's statistics; no training rows, no
  model. Fast: 12 random SIRENs, no fitting."""
  import jax  # pylint: disable=g-import-not-at-top
  from gmn_jax.tasks.inr_classification import build_model  # pylint: disable=g-import-not-at-top
  from gmn_jax.training.encoding import Architecture, encode_architectures  # pylint: disable=g-import-not-at-top
  from gmn_jax.zoos.inr.zoo import InrZooConfig  # pylint: disable=g-import-not-at-top
  zoo_config = InrZooConfig.tiny()
  model = zoo_config.model()
  coords = np.zeros((1, 2), np.float32)
  rng = np.random.default_rng(0)
  one = model.init(jax.random.key(0), coords)
  variables = jax.tree.map(lambda a: rng.normal(0, 0.5, (12,) + a.shape).astype(np.float32), one)
  table = {'label': np.arange(12) % 10}
  graphs = encode_architectures([Architecture('siren', model, variables, table)], coords,
                                'label', max_abs_param=None).graphs
  train = np.arange(8)
  config = InrClassificationConfig(normalization='dataset', standardize_readout=True,
                                   hidden=8, layers=1)
  built = build_model('nggnn', config, graphs, zoo_config, 10, train)
  assert built.layer_statistics == graphs.layer_statistics(train).frozen()
  assert built.layer_statistics != graphs.layer_statistics(np.arange(12)).frozen()
  assert built.readout_statistics is not None and not built.normalize_weights
  assert built.readout_pool == 'output'  # weights only: the output neuron ('auto')
  assert built.value_features == 'sinusoidal'  # value_encoding='octaves', the default
  fourier = build_model('nggnn', dataclasses.replace(config, value_encoding='fourier'), graphs,
                        zoo_config, 10, train)
  assert (fourier.value_features, fourier.n_frequencies) == ('fourier', 128)
  with pytest.raises(ValueError, match='training rows'):
    build_model('nggnn', config, graphs, zoo_config, 10)
  with pytest.raises(ValueError, match='unknown normalization'):
    InrClassificationConfig(normalization='batch')


def test_weights_only_graph_metanetworks_read_the_output_neuron_by_default():
  """`'auto'`: without probes, the output neuron alone and data-set statistics; with probes
  (and DeepSets) every pool and per-INR statistics."""
  from gmn_jax.tasks.inr_classification.run import normalization, readout_pool  # pylint: disable=g-import-not-at-top
  config = InrClassificationConfig()
  assert config.readout_pool == 'auto' and config.normalization == 'auto'
  for name in ('gmn', 'nggnn', 'ngt'):
    assert readout_pool(config, name) == 'output'
    assert readout_pool(config, f'{name}_probes') == 'all'
    assert normalization(config, name) == 'dataset'
    assert normalization(config, f'{name}_probes') == 'graph'
  assert normalization(config, 'deepsets') == 'graph'
  assert normalization(InrClassificationConfig(normalization='graph'), 'nggnn') == 'graph'
  assert readout_pool(InrClassificationConfig(readout_pool='all'), 'nggnn') == 'all'
  assert readout_pool(InrClassificationConfig(readout_pool='output'), 'gmn_probes') == 'output'
  with pytest.raises(ValueError, match='unknown readout_pool'):
    InrClassificationConfig(readout_pool='hidden')



def test_value_encoding_fourier_gives_the_graph_metanetworks_neural_graphs_frequencies():
  """`value_encoding='fourier'`: 128 Gaussian frequencies of scale 3 sqrt 2 for the graph
  metanetworks; the baselines and the default ('octaves') keep the encoder's own."""
  from gmn_jax.metanets.features import value_frequencies  # pylint: disable=g-import-not-at-top
  from gmn_jax.tasks.inr_classification.run import FOURIER_SCALE  # pylint: disable=g-import-not-at-top
  assert InrClassificationConfig().value_encoding == 'octaves'
  assert abs(FOURIER_SCALE - 3 * 2 ** 0.5) < 1e-6
  freqs = value_frequencies('fourier', 128, FOURIER_SCALE)
  assert 3.5 < freqs.std() < 5.0  # 3 sqrt 2 = 4.24, from 128 draws
  with pytest.raises(ValueError, match='unknown value_encoding'):
    InrClassificationConfig(value_encoding='sinusoidal')

"""The public Small CNN Zoo format: a fixture written the way the published files are laid out.

The fixture follows the CIFAR10-GS/SVHN-GS layout: 3 convolutions of 16 channels on 1-channel
32x32 images, a Dense layer to 10 classes, 4,970 parameters per row, each layer's bias before
its kernel, and a pandas-style unnamed index column in metrics.csv.gz. Every weight's value is
its column index, so a misplaced slice shows up as a wrong number. Corner cases: rows out of
order and repeated (`rows=`), runs whose checkpoints are listed out of step order, a plain
metrics.csv, and missing/corrupt files and files that disagree (named in the error, nothing
written). The same layout on 8x8 digits with SAME padding but no padding column is the zoo a
new user brings: its third feature map vanishes under the format's default (VALID) unless an
argument or an `arch.json` sidecar says SAME.
"""

import csv
import gzip
import io
import json
import pathlib

import jax
import numpy as np
import pytest

import gmn_jax

# (varname, shape) in the published order.
LAYOUT = [
    ('sequential/conv2d/bias:0', (16,)),
    ('sequential/conv2d/kernel:0', (3, 3, 1, 16)),
    ('sequential/conv2d_1/bias:0', (16,)),
    ('sequential/conv2d_1/kernel:0', (3, 3, 16, 16)),
    ('sequential/conv2d_2/bias:0', (16,)),
    ('sequential/conv2d_2/kernel:0', (3, 3, 16, 16)),
    ('sequential/dense/bias:0', (10,)),
    ('sequential/dense/kernel:0', (16, 10)),
]
ROWS = 6  # 2 runs x 3 checkpoints
STEPS = [0, 2000, 100, 0, 50, 4000]  # run a: 0, 2000, 100; run b: 0, 50, 4000


def _write_fixture(directory: pathlib.Path, metrics_name='metrics.csv.gz',
                   dataset='cifar10') -> np.ndarray:
  directory.mkdir(parents=True, exist_ok=True)
  with open(directory / 'layout.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['varname', 'start_idx', 'end_idx', 'shape'])
    start = 0
    for name, shape in LAYOUT:
      writer.writerow([name, start, start + int(np.prod(shape)), str(shape)])
      start += int(np.prod(shape))
  assert start == 4970
  weights = np.tile(np.arange(4970, dtype=np.float32), (ROWS, 1)) + 1e4 * np.arange(ROWS)[:, None]
  np.save(directory / 'weights.npy', weights.astype(np.float32))
  text = io.StringIO()
  writer = csv.writer(text)
  writer.writerow(['', 'config.activation', 'config.dataset', 'config.dropout',
                   'config.l2reg', 'config.learning_rate', 'config.optimizer',
                   'config.train_fraction', 'config.w_init', 'config.init_std', 'modeldir',
                   'step', 'test_accuracy', 'test_loss', 'train_accuracy', 'train_loss'])
  for i in range(ROWS):
    run = 'a' if i < 3 else 'b'
    writer.writerow([i, 'relu' if run == 'a' else 'tanh', dataset, 0.1, 1e-5,
                     0.01 if run == 'a' else 0.002, 'adam', 0.5, 'he_normal',
                     '' if run == 'a' else 0.05, f'/zoo/run_{run}', STEPS[i], 0.1 * i, 2.0,
                     0.1 * i + 0.05, 1.5])
  data = text.getvalue().encode()
  (directory / metrics_name).write_bytes(gzip.compress(data) if metrics_name.endswith('.gz')
                                         else data)
  return weights


@pytest.fixture
def fixture_dir(tmp_path) -> tuple[pathlib.Path, np.ndarray]:
  directory = tmp_path / 'cifar10'
  return directory, _write_fixture(directory)


def test_read_places_every_slice(fixture_dir):
  directory, weights = fixture_dir
  zoo = gmn_jax.read_small_cnn_zoo(directory)
  assert zoo.widths == (16,) and len(zoo) == ROWS and zoo.input_shape == (32, 32, 1)
  params = zoo.params[16]['params']
  assert sorted(params) == ['Conv_0', 'Conv_1', 'Conv_2', 'Dense_0']
  np.testing.assert_array_equal(params['Conv_0']['bias'], weights[:, 0:16])
  np.testing.assert_array_equal(params['Conv_0']['kernel'],
                                weights[:, 16:160].reshape(ROWS, 3, 3, 1, 16))
  np.testing.assert_array_equal(params['Conv_1']['bias'], weights[:, 160:176])
  np.testing.assert_array_equal(params['Dense_0']['kernel'],
                                weights[:, 4970 - 160:].reshape(ROWS, 16, 10))
  np.testing.assert_array_equal(params['Dense_0']['bias'], weights[:, 4970 - 170:4970 - 160])
  # TF kernels are (kh, kw, in, out) like Flax: entry [i, j, c, o] sits at i*3*1*16 + ...
  assert params['Conv_0']['kernel'][0, 1, 2, 0, 5] == 16 + ((1 * 3 + 2) * 1 + 0) * 16 + 5
  table = zoo.metrics[16]
  np.testing.assert_array_equal(table['member'], [0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(table['snapshot'], [0, 2, 1, 0, 1, 2])
  np.testing.assert_array_equal(table['step'], STEPS)
  assert list(table['activation']) == ['relu'] * 3 + ['tanh'] * 3
  assert table['learning_rate'].dtype == np.float64 and table['learning_rate'][0] == 0.01
  assert np.isnan(table['init_std'][0]) and table['init_std'][4] == 0.05
  np.testing.assert_allclose(table['test_accuracy'], 0.1 * np.arange(ROWS))
  assert zoo.model_kwargs['strides'] == 2 and zoo.model_kwargs['padding'] == 'VALID'
  assert np.all(table['epoch'] == -1)
  np.testing.assert_array_equal(table['row'], np.arange(ROWS))


def test_converts_through_the_tracer(fixture_dir):
  directory, _ = fixture_dir
  zoo = gmn_jax.read_small_cnn_zoo(directory)
  params, table = zoo.select(16, 'tanh')
  model = zoo.model(16, 'tanh')
  logits = jax.vmap(lambda v: model.apply(v, zoo.example_input(2)))(params)
  assert logits.shape == (3, 2, 10)
  first = jax.tree.map(lambda a: a[0], params)
  graph = gmn_jax.trace(model, first, zoo.example_input())
  assert graph.n_params == 4970
  decoded = jax.vmap(graph.decode)(jax.vmap(graph.encode)(params))
  jax.tree.map(np.testing.assert_array_equal, decoded, params)
  assert list(table['member']) == [1, 1, 1]


def test_rows_and_plain_csv(tmp_path):
  directory = tmp_path / 'plain'
  weights = _write_fixture(directory, 'metrics.csv')
  zoo = gmn_jax.read_small_cnn_zoo(directory, rows=[4, 1, 4])
  np.testing.assert_array_equal(zoo.params[16]['params']['Conv_2']['bias'],
                                weights[[4, 1, 4], 2480:2496])  # after 160 + 2320 values
  np.testing.assert_array_equal(zoo.metrics[16]['step'], [STEPS[4], STEPS[1], STEPS[4]])
  np.testing.assert_array_equal(zoo.metrics[16]['row'], [4, 1, 4])


@pytest.fixture
def digits_dir(tmp_path) -> pathlib.Path:
  """8x8 digit CNNs trained with SAME padding; the files do not say so."""
  directory = tmp_path / 'digits'
  _write_fixture(directory, dataset='digits')
  return directory


def test_vanishing_feature_map_names_the_layer_and_the_flag(digits_dir):
  before = {p.name: p.read_bytes() for p in digits_dir.iterdir()}
  with pytest.raises(gmn_jax.ZooError, match=r'vanishes at Conv_2: its 1x1 input.* stride 2 '
                     r'and VALID padding leave 0x0.*--padding'):
    gmn_jax.read_small_cnn_zoo(digits_dir)
  assert {p.name: p.read_bytes() for p in digits_dir.iterdir()} == before


@pytest.mark.parametrize('how', ['argument', 'arch.json', 'argument over arch.json'])
def test_padding_from_an_argument_or_the_sidecar(digits_dir, how):
  kwargs = {}
  if how != 'argument':
    padding = 'VALID' if how == 'argument over arch.json' else 'same'
    (digits_dir / 'arch.json').write_text(json.dumps({'padding': padding}))
  if how != 'arch.json':
    kwargs['padding'] = 'SAME'
  lines = []
  zoo = gmn_jax.read_small_cnn_zoo(digits_dir, log=lines.append, **kwargs)
  assert zoo.model_kwargs['padding'] == 'SAME' and zoo.input_shape == (8, 8, 1)
  source = 'arch.json' if how == 'arch.json' else 'argument'
  assert f'padding SAME ({source}; --padding)' in lines[0]
  assert "input_shape (8, 8, 1) (from config.dataset 'digits'" in lines[0]
  assert 'feature maps 8x8 -> 4x4 -> 2x2 -> 1x1' in lines[0]
  logits = zoo.model(16, 'relu').apply(jax.tree.map(lambda a: a[0], zoo.params[16]),
                                       zoo.example_input(2))
  assert logits.shape == (2, 10)


def test_activation_column_and_input_shape(digits_dir):
  path = digits_dir / 'metrics.csv.gz'
  path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(
      b'config.activation', b'config.act_fn')))
  with pytest.raises(gmn_jax.ZooError, match='no config.activation column.*--activation-column'):
    gmn_jax.read_small_cnn_zoo(digits_dir, padding='SAME')
  zoo = gmn_jax.read_small_cnn_zoo(digits_dir, padding='SAME', activation_column='act_fn')
  assert list(zoo.metrics[16]['activation']) == ['relu'] * 3 + ['tanh'] * 3
  with pytest.raises(gmn_jax.ZooError, match='input shape .8, 8, 3. .argument. has 3 channels '
                     'but the first kernel takes 1; fix it with --input-shape'):
    gmn_jax.read_small_cnn_zoo(digits_dir, padding='SAME', activation_column='act_fn',
                               input_shape=(8, 8, 3))
  with pytest.raises(gmn_jax.ZooError, match='config.optimizer holds .*adam.*--activation'):
    gmn_jax.read_small_cnn_zoo(digits_dir, padding='SAME', activation_column='optimizer')


def test_write_read_round_trip(fixture_dir, tmp_path):
  directory, _ = fixture_dir
  zoo = gmn_jax.read_small_cnn_zoo(directory)
  out = gmn_jax.write_small_cnn_zoo(zoo, tmp_path / 'out')
  layout = (out / 'layout.csv').read_text().splitlines()
  assert layout[0] == 'varname,start_idx,end_idx,shape'
  assert layout[1] == 'sequential/conv2d/bias:0,0,16,"(16,)"'
  assert layout[2] == 'sequential/conv2d/kernel:0,16,160,"(3, 3, 1, 16)"'
  assert layout[-1] == 'sequential/dense/kernel:0,4810,4970,"(16, 10)"'
  again = gmn_jax.read_small_cnn_zoo(out)
  np.testing.assert_array_equal(np.load(out / 'weights.npy'), np.load(directory / 'weights.npy'))
  jax.tree.map(np.testing.assert_array_equal, again.params, zoo.params)
  for name in ('member', 'snapshot', 'step', 'test_accuracy', 'train_loss', 'learning_rate',
               'optimizer', 'activation', 'modeldir'):
    if name == 'modeldir':
      continue  # renamed to member_<id>
    np.testing.assert_array_equal(again.metrics[16][name], zoo.metrics[16][name], err_msg=name)
  assert again.input_shape == zoo.input_shape and again.model_kwargs == zoo.model_kwargs


def test_write_needs_one_width(fixture_dir, tmp_path):
  directory, _ = fixture_dir
  zoo = gmn_jax.read_small_cnn_zoo(directory)
  two = gmn_jax.Zoo({16: zoo.params[16], 8: zoo.params[16]},
                    {16: zoo.metrics[16], 8: zoo.metrics[16]}, zoo.input_shape,
                    zoo.model_kwargs)
  with pytest.raises(ValueError, match='width='):
    gmn_jax.write_small_cnn_zoo(two, tmp_path / 'out')


@pytest.mark.parametrize('damage, message', [
    (lambda d: (d / 'weights.npy').unlink(), 'weights.npy is missing'),
    (lambda d: (d / 'layout.csv').unlink(), 'layout.csv is missing'),
    (lambda d: (d / 'metrics.csv.gz').unlink(), 'metrics.csv.gz .* is missing'),
    (lambda d: (d / 'weights.npy').write_bytes(b'garbage'), 'weights.npy is unreadable'),
    (lambda d: (d / 'metrics.csv.gz').write_bytes(b'garbage'), 'metrics.csv.gz is unreadable'),
    (lambda d: np.save(d / 'weights.npy', np.zeros((ROWS, 4000), np.float32)),
     r'shape \(6, 4000\).* 4970 parameters'),
    (lambda d: np.save(d / 'weights.npy', np.zeros((ROWS + 1, 4970), np.float32)),
     'has 6 rows but weights.npy has 7'),
    (lambda d: (d / 'layout.csv').write_text(
        (d / 'layout.csv').read_text().replace('conv2d_1/bias', 'batch_normalization/beta')),
     'batch_normalization/beta'),
    (lambda d: (d / 'layout.csv').write_text(
        (d / 'layout.csv').read_text().replace(',16,160,', ',16,161,')),
     'should start at'),
    (lambda d: (d / 'layout.csv').write_text(  # as many values, channels that do not chain
        (d / 'layout.csv').read_text().replace('(3, 3, 16, 16)', '(3, 3, 8, 32)', 1)),
     r'Conv_1 \(sequential/conv2d_1/kernel:0\) takes 8 channels in .* the layer before '
     'gives 16'),
    (lambda d: (d / 'arch.json').write_text('{"pading": "SAME"}'),
     'arch.json must be a JSON object with keys'),
    (lambda d: (d / 'arch.json').write_text('{"padding": "FULL"}'),
     "padding 'FULL' from arch.json is not valid"),
])
def test_damaged_files(fixture_dir, damage, message):
  directory, _ = fixture_dir
  damage(directory)
  before = {p.name: p.read_bytes() for p in directory.iterdir()}
  with pytest.raises(gmn_jax.ZooError, match=message):
    gmn_jax.read_small_cnn_zoo(directory)
  assert {p.name: p.read_bytes() for p in directory.iterdir()} == before

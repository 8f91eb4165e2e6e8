"""The experiments' flags come from their config dataclasses (`experiments/flags.py`), and the
library's errors reach the command line as one line. No training: parsers and configs only."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from experiments import flags
from gmn_jax import tasks

EXPERIMENTS = tasks.TASKS


def _parser(name):
  return importlib.import_module(f'experiments.{name}').parser()


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_no_flags_is_the_default_and_tiny_the_tiny_config(name):
  task = getattr(tasks, name)
  parser = _parser(name)
  assert flags.config(parser.parse_args([])) == task.Config.default() == task.Config()
  assert flags.config(parser.parse_args(['--tiny'])) == task.Config.tiny()


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_every_config_field_of_plain_type_is_a_flag(name):
  parser = _parser(name)
  dests = {a.dest for a in parser._actions}  # pylint: disable=protected-access
  config = getattr(tasks, name).Config
  plain = [f.name for f in dataclasses.fields(config)
           if isinstance(getattr(config.default(), f.name), (int, float, str, tuple))
           and not (isinstance(getattr(config.default(), f.name), tuple)
                    and any(isinstance(x, tuple) or dataclasses.is_dataclass(x)
                            for x in getattr(config.default(), f.name)))]
  assert set(plain) <= dests, set(plain) - dests
  assert 'methods' in dests


def test_aliases_nested_fields_and_the_seed():
  parser = _parser('generalization')
  config = flags.config(parser.parse_args([
      '--members', '7', '--epochs', '3', '--train.learning-rate', '0.01', '--seed', '5',
      '--methods', 'gmn', 'mlp', '--zoo.widths', '4', '8', '--no-train.augment']))
  assert config.zoo.num_members == 7 and config.zoo.widths == (4, 8)
  assert config.train.epochs == 3 and config.train.learning_rate == 0.01
  assert config.seed == 5 and config.train.seed == 5  # --seed seeds training too
  assert config.methods == ('gmn', 'mlp') and config.train.augment is False
  config = flags.config(parser.parse_args(['--seed', '5', '--train.seed', '2']))
  assert (config.seed, config.train.seed) == (5, 2)
  # Fields the config checks together are replaced together.
  config = flags.config(parser.parse_args(['--final-step', '6', '--protocol', 'published',
                                           '--split-file', 'split.csv']))
  assert (config.protocol, config.final_step, config.split_file) == ('published', 6, 'split.csv')
  quick = flags.config(parser.parse_args(['--quick', '--hidden', '8']))
  assert quick == dataclasses.replace(tasks.generalization.Config.quick(), hidden=8)


def test_help_comes_from_the_docstring():
  text = _parser('inr_editing').format_help()
  assert '--edit {contrast,dilate,flip}' in text
  assert "'dilate', 'contrast' or 'flip'" in text  # EditingConfig's Attributes line
  assert '--images' in text and '--zoo.max-images' in text


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_workdir_help_names_its_default(name):
  workdir = next(a for a in _parser(name)._actions  # pylint: disable=protected-access
                 if a.dest == 'workdir')
  assert '(default: workdir/' in workdir.help % {'default': workdir.default}


def test_an_unknown_method_is_refused_by_the_parser(capsys):
  with pytest.raises(SystemExit) as exit_info:
    _parser('inr_classification').parse_args(['--methods', 'resnet50'])
  assert exit_info.value.code == 2
  assert "invalid choice: 'resnet50'" in capsys.readouterr().err


def test_a_config_error_is_one_line_and_exit_code_1(capsys, monkeypatch):
  from experiments import generalization  # pylint: disable=g-import-not-at-top
  argv = ['--protocol', 'published', '--split', 'ood']
  with pytest.raises(SystemExit) as exit_info:
    generalization.main(argv)
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err == ("error: ValueError: the published protocol has its own split; drop "
                 "split='ood' (--debug or GMN_JAX_DEBUG=1 for the traceback)\n"), err
  with pytest.raises(ValueError, match='its own split'):  # the negative twin: the trace
    generalization.main(argv + ['--debug'])
  monkeypatch.setenv('GMN_JAX_DEBUG', '1')
  with pytest.raises(ValueError, match='its own split'):
    generalization.main(argv)


def test_an_alias_of_no_field_is_refused():
  with pytest.raises(ValueError, match='aliases of no flag field'):
    flags.parser('doc', tasks.inr_editing.Config, None, {'epochs': 'train.epochs'})

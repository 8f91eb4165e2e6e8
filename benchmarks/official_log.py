"""Reading an official neural-graphs run's log (the JSON lines `official_stubs/wandb` writes):
each evaluation's record beside the mean training loss of the epoch before it."""

from __future__ import annotations

import json
import pathlib


def epochs(log: str | pathlib.Path, metric: str) -> list[tuple[dict, float]]:
  """`(evaluation record, mean train/loss of its epoch)` for every record holding `metric`
  (e.g. 'val/acc', 'val/avg_loss'), in order; the training losses are split evenly between
  the evaluations (the official code evaluates once per epoch)."""
  rows = [json.loads(line) for line in pathlib.Path(log).read_text().splitlines()]
  evals = [r for r in rows if metric in r]
  losses = [r['train/loss'] for r in rows if 'train/loss' in r]
  per_epoch = max(1, len(losses) // max(1, len(evals)))
  chunks = [losses[i * per_epoch:(i + 1) * per_epoch] for i in range(len(evals))]
  return [(r, sum(c) / len(c) if c else float('nan')) for r, c in zip(evals, chunks)]

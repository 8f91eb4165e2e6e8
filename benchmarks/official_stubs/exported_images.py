"""A stand-in for `torchvision.datasets.MNIST` when running the official neural-graphs INR
editing code on an exported INR zoo (`benchmarks/inr_editing_official.py`): the images the
INRs were fitted to, read from the export's `images.npz` and indexed by the image number in
each INR's path (`inrs/<split>_<label>_<image>/...`, which the official `INRAndImageDataset`
parses), as uint8 `[H, W]` arrays, what `np.array` gives of MNIST's PIL images. Not part of
gmn_jax."""

import numpy as np


class ExportedImages:
  """`dataset[i]` -> (uint8 `[H, W]` image i of the export, its label)."""

  def __init__(self, root, train=True, download=False):
    del train, download  # the image number indexes every image of the export
    with np.load(root) as data:
      images, self.labels = data['images'], data['labels']
    if images.ndim != 4 or images.shape[-1] != 1:
      raise ValueError(f'{root}: want grey images [n, H, W, 1], got {images.shape}')
    scaled = images[..., 0].astype(np.float64) * 255
    pixels = np.round(scaled)
    # The official targets are uint8 images / 255: only images on that grid are read alike.
    if images.min() < 0 or images.max() > 1 or np.abs(scaled - pixels).max() > 1e-3:
      raise ValueError(f'{root}: pixels must be multiples of 1/255 in [0, 1]')
    self.images = pixels.astype(np.uint8)

  def __len__(self):
    return len(self.images)

  def __getitem__(self, index):
    return self.images[index], int(self.labels[index])

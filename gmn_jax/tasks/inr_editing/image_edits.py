"""Image edits that INR editing learns to apply through the weights: the targets.

Every edit maps images `[n, H, W, C]` in a value range `[low, high]` to images of the same
shape and range. Host-side (numpy).

- `dilate`: a 3x3 max filter, one iteration (grey-scale morphological dilation), as the
  papers' `cv2.dilate(image, np.ones((3, 3)))`; the border is ignored (OpenCV's default border
  value for dilation), i.e. the max is over the pixels inside the image. A max commutes with
  the papers' uint8 rounding, so no OpenCV is needed.
- `contrast`: a global contrast stretch per image: the 2nd and 98th percentiles are mapped to
  the range's ends and the result clipped. The papers use CLAHE (clip 1.0, 3x3 tiles, on
  CIFAR's L channel); a stretch is a single monotone map per image that needs no OpenCV and is
  defined for grey images too, but it is a different target, so its MSEs are not comparable
  with the published contrast numbers.
- `flip`: a horizontal flip, an edit that is not local (every output pixel depends on a pixel
  across the image), which INR weights represent through the first layer's x-weights.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ['EDITS', 'apply_edit', 'contrast', 'dilate', 'flip']


def dilate(images: np.ndarray, low: float, high: float) -> np.ndarray:
  """3x3 max filter, one iteration, borders ignored. `[n, H, W, C]` -> same."""
  del low, high
  padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
  height, width = images.shape[1:3]
  shifted = [padded[:, i:i + height, j:j + width] for i in range(3) for j in range(3)]
  return np.max(shifted, axis=0).astype(images.dtype)


def contrast(images: np.ndarray, low: float, high: float) -> np.ndarray:
  """Per-image contrast stretch: percentiles 2 and 98 -> `low`, `high`, clipped."""
  lo = np.percentile(images, 2, axis=(1, 2, 3), keepdims=True)
  hi = np.percentile(images, 98, axis=(1, 2, 3), keepdims=True)
  stretched = low + (images - lo) * (high - low) / np.maximum(hi - lo, 1e-6)
  return np.clip(stretched, low, high).astype(images.dtype)


def flip(images: np.ndarray, low: float, high: float) -> np.ndarray:
  """Horizontal flip (columns reversed)."""
  del low, high
  return np.ascontiguousarray(images[:, :, ::-1])


EDITS: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    'dilate': dilate, 'contrast': contrast, 'flip': flip}


def apply_edit(name: str, images: np.ndarray, low: float, high: float) -> np.ndarray:
  """The edit `name` of `images` `[n, H, W, C]` in `[low, high]`.

  Raises:
    ValueError: for an unknown edit (the message lists the known ones).
  """
  if name not in EDITS:
    raise ValueError(f'unknown edit {name!r}; choose from {sorted(EDITS)}')
  return EDITS[name](np.asarray(images, np.float32), low, high)

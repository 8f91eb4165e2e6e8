"""Stub (see the package docstring): transforms are never called by INR classification."""
from torchvision import _unavailable

Compose = Lambda = ToTensor = Normalize = _unavailable('transforms')

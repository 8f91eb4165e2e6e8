"""Stub (see the package docstring): image data sets are never loaded by INR classification."""
from torchvision import _unavailable

CIFAR10 = MNIST = FashionMNIST = _unavailable('datasets')

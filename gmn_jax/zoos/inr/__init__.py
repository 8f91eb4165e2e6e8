"""Zoos of implicit neural representations: SIRENs fitted to images.

`siren` fits SIRENs to images in one vmapped program; `zoo` stores zoos of them (through
`gmn_jax.zoos.shards`); `published` reads DWSNets' and NFN's published INR files without torch,
`export` writes a zoo in DWSNets' format (without torch) for the official codes.
"""

from gmn_jax.zoos.inr.export import export_dwsnets, write_torch_state_dict
from gmn_jax.zoos.inr.published import (PublishedInrs, load_dwsnets_inrs, load_nfn_sirens,
                                        read_torch_state_dict)
from gmn_jax.zoos.inr.siren import CONVENTIONS, Siren, fit_sirens, render
from gmn_jax.zoos.inr.zoo import InrZoo, InrZooConfig, generate_inr_zoo, load_images, load_inr_zoo

__all__ = ['CONVENTIONS', 'InrZoo', 'InrZooConfig', 'PublishedInrs', 'Siren', 'export_dwsnets',
           'fit_sirens', 'generate_inr_zoo', 'load_dwsnets_inrs', 'load_images', 'load_inr_zoo',
           'load_nfn_sirens', 'read_torch_state_dict', 'render', 'write_torch_state_dict']

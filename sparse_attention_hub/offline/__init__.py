"""Offline steps that produce the artefacts some maskers read.

Double Sparsity needs a ranked channel list per layer and head, HashAttention needs learned
hash MLPs. The reference framework only reads artefacts published for a few models; these
modules produce them for any model the adapter can load (``sah calibrate double-sparsity``,
``sah train hashattention``). This package sits beside the executor: it loads models through
``adapters`` and writes files in the formats ``sparse_attention`` maskers read.
"""

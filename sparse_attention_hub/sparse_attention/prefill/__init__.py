"""Sparse prefill: methods that choose which (query block, key block) pairs of the context
prefill are computed (MInference's vertical-slash, FlexPrefill, XAttention, the block oracle),
run on PyTorch's FlexAttention with a ``BlockMask`` so that no L x L tensor exists.

A prefill masker (:class:`~.base.PrefillMasker`) reads :class:`~.base.PrefillInputs` and
returns a :class:`~.base.PrefillSelection`; the engine takes the union of the selections of a
config's ``prefill_maskers``, cuts it to the causal (and sliding-window) pairs and computes the
prefill with ``flex_attention``.
"""

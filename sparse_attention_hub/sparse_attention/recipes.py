"""Recipes: the published sparse-attention stacks by name.

A recipe is a paper's method as this framework builds it: a masker list and the layers kept
dense, with the sizes of the paper's main experiments as defaults. Parameters override the
defaults; every recipe also takes ``dense_layers``. Expand one with
``ResearchAttentionConfig.from_recipe("quest", heavy_size=0.05)``, in a study file with
``sparse_configs: {qk: {recipe: quest, heavy_size: 0.05}}``, and list them with
``sah list recipes``.

Adding a recipe is one decorated function: its keyword parameters (with defaults) are the
recipe's parameters, and it returns the masker list as ``[{name: {param: value}}, ...]``::

    @register_recipe("my_method", paper="Me et al., 2025, 'My Method'", dense_layers=(0,))
    def my_method(heavy_size: Size = 0.05) -> MaskerList:
        return [{"sink": {"sink_size": 4}}, {"oracle_top_k": {"heavy_size": heavy_size}}]

A recipe that sparsifies the prefill returns the config's dict form instead,
``{"maskers": [...], "prefill_maskers": [...]}`` (its ``prefill_maskers`` read the prefill
registry, ``sah list prefill``; ``maskers`` may be empty: dense decode). The prefill recipes
are in ``recipes_prefill.py``.

Masker names are resolved when the config is built, so a recipe may name a masker another
module registers (``hashattention`` below).

Default dense layers are the paper's, for the paper's model (magicpig's ``[0, 16]`` for a
32-layer Llama). On a smaller model the executor's preflight clips them: the layers the model
lacks are left out, with a note (``ResearchAttentionConfig.dense_layers_from_recipe``).
``dense_layers`` given explicitly are the user's and are refused when the model lacks a layer.
"""

from __future__ import annotations

from sparse_attention_hub.sparse_attention.maskers.base import Size
from sparse_attention_hub.sparse_attention.recipe_registry import (
    HEAVY_PARTS,
    MaskerList,
    Recipe,
    available_recipes,
    describe_recipes,
    expand_recipe,
    get_recipe,
    register_recipe,
)
from sparse_attention_hub.sparse_attention.recipes_eviction import EVICTION_RECIPES
from sparse_attention_hub.sparse_attention.recipes_prefill import PREFILL_RECIPES

# ---------------------------------------------------------------------- the published stacks


@register_recipe(
    "streaming_llm",
    paper="Xiao et al., 2024, 'Efficient Streaming Language Models with Attention Sinks' "
    "(ICLR 2024): 4 attention sinks + a window of recent tokens (4 + 1020).",
)
def streaming_llm(sink_size: Size = 4, window_size: Size = 1020) -> MaskerList:
    return [{"sink": {"sink_size": sink_size}}, {"local": {"window_size": window_size}}]


@register_recipe(
    "oracle_top_k",
    paper="The exact top-k upper bound of approximate top-k methods (sink 128 + local 128 + "
    "top-k, the deterministic part of Desai et al., 2025, 'vAttention').",
)
def oracle_top_k(
    sink_size: Size = 128, window_size: Size = 128, heavy_size: Size = 0.05
) -> MaskerList:
    return [
        {"sink": {"sink_size": sink_size}},
        {"local": {"window_size": window_size}},
        {"oracle_top_k": {"heavy_size": heavy_size}},
    ]


@register_recipe(
    "oracle_top_p",
    paper="The exact top-p oracle: the fewest keys holding top_p of the attention mass "
    "(sink 128 + local 128 + top-p).",
)
def oracle_top_p(sink_size: Size = 128, window_size: Size = 128, top_p: float = 0.9) -> MaskerList:
    return [
        {"sink": {"sink_size": sink_size}},
        {"local": {"window_size": window_size}},
        {"oracle_top_p": {"top_p": top_p}},
    ]


@register_recipe(
    "quest",
    paper="Tang et al., 2024, 'Quest: Query-Aware Sparsity for Efficient Long-Context LLM "
    "Inference' (ICML 2024): 16-token pages, layers 0-1 dense.",
    dense_layers=(0, 1),
)
def quest(heavy_size: Size = 1024, page_size: int = 16) -> MaskerList:
    return [{"quest": {"token_budget": heavy_size, "page_size": page_size}}]


@register_recipe(
    "magicpig",
    paper="Chen et al., 2024, 'MagicPIG: LSH Sampling for Efficient LLM Generation' "
    "(Infini-AI-Lab/MagicPIG): 4 sink keys, the last 64 keys of the prompt and every later key "
    "dense, the rest sampled with (K, L) = (10, 150); layers 0 and 16 dense.",
    dense_layers=(0, 16),
)
def magicpig(
    sink_size: int = 4,
    window_size: int = 64,
    lsh_k: int = 10,
    lsh_l: int = 150,
    min_collisions: int = 2,
    seed: int = 0,
) -> MaskerList:
    # The masker attends the sink and the window itself: the window is fixed at the end of
    # the prompt, as in the official code (a ``local`` masker would slide with the query).
    return [
        {
            "magicpig": {
                "lsh_k": lsh_k,
                "lsh_l": lsh_l,
                "min_collisions": min_collisions,
                "seed": seed,
                "sink_size": sink_size,
                "window_size": window_size,
            }
        },
    ]


@register_recipe(
    "vattention",
    paper="Desai et al., 2025, 'vAttention: Verified Sparse Attention' (arXiv 2510.05688): "
    "sink 128 + local 128 + top-k (oracle or HashAttention) + verified sampling.",
)
def vattention(
    heavy: str = "oracle_top_k",
    heavy_size: Size = 0.05,
    weights_file: str | None = None,
    sink_size: Size = 128,
    window_size: Size = 128,
    epsilon: float = 0.05,
    delta: float = 0.05,
    base_rate_sampling: float = 0.05,
    seed: int = 0,
) -> MaskerList:
    if heavy not in HEAVY_PARTS:
        raise ValueError(f"recipe 'vattention': heavy must be one of {HEAVY_PARTS}, got {heavy!r}")
    if heavy == "hashattention":
        if weights_file is None:
            raise ValueError("recipe 'vattention' with heavy='hashattention' needs weights_file")
        heavy_part = {"hashattention": {"heavy_size": heavy_size, "weights_file": weights_file}}
    else:
        heavy_part = {"oracle_top_k": {"heavy_size": heavy_size}}
    return [
        {"sink": {"sink_size": sink_size}},
        {"local": {"window_size": window_size}},
        heavy_part,
        {
            "vattention": {
                "epsilon": epsilon,
                "delta": delta,
                "base_rate_sampling": base_rate_sampling,
                "init_offset": sink_size,
                "local_offset": window_size,
                "seed": seed,
            }
        },
    ]


@register_recipe(
    "pq_cache",
    paper="Zhang et al., 2024, 'PQCache: Product Quantization-based KVCache for Long Context "
    "LLM Inference' (HugoZHL/PQCache): 32 initial tokens, then the budget split half recent "
    "window, half PQ top-k (recent_ratio 0.5); 2 sub-vectors, 64 centroids; 1/5 and 1/10 of "
    "the tokens in the paper's LongBench runs.",
)
def pq_cache(
    token_budget: Size = 0.2,
    sink_size: int = 32,
    pq_subvectors: int = 2,
    pq_bits: int = 6,
    kmeans_iter: int = 10,
    seed: int = 0,
) -> MaskerList:
    half = token_budget / 2 if isinstance(token_budget, float) else max(1, token_budget // 2)
    return [
        {"sink": {"sink_size": sink_size}},
        {"local": {"window_size": half}},
        {
            "pq_cache": {
                "heavy_size": half,
                "pq_subvectors": pq_subvectors,
                "pq_bits": pq_bits,
                "kmeans_iter": kmeans_iter,
                "init_offset": sink_size,
                "seed": seed,
            }
        },
    ]


@register_recipe(
    "double_sparsity",
    paper="Yang et al., 2024, 'Post-Training Sparse Attention with Double Sparsity' "
    "(andy-yang-1/DoubleSparse): 1/16 of the tokens by labels on 1/8 of the channels at 4 bits, "
    "no sink or window, layers 0-1 dense; channel_file from `sah calibrate double-sparsity`.",
    dense_layers=(0, 1),
)
def double_sparsity(
    channel_file: str | None = None,
    heavy_size: Size = 0.0625,
    group_factor: int = 8,
    label_bits: int = 4,
    channel_selection: str = "q",
) -> MaskerList:
    return [
        {
            "double_sparsity": {
                "heavy_size": heavy_size,
                "channel_file": channel_file,
                "group_factor": group_factor,
                "label_bits": label_bits,
                "channel_selection": channel_selection,
            }
        }
    ]


@register_recipe(
    "hashattention",
    paper="Desai et al., 2025, 'HashAttention: Semantic Sparsity for Faster Inference' "
    "(xAlg-ai/HashAttention-1.0): sink 128 + local 128 + top-k by 32-bit learned signatures, "
    "1/8 to 1/32 of the tokens; weights_file from `sah train hashattention`.",
)
def hashattention(
    weights_file: str | None = None,
    heavy_size: Size = 0.125,
    sink_size: Size = 128,
    window_size: Size = 128,
    hat_bits: int = 32,
    allow_pickle: bool = False,
) -> MaskerList:
    return [
        {"sink": {"sink_size": sink_size}},
        {"local": {"window_size": window_size}},
        {
            "hashattention": {
                "heavy_size": heavy_size,
                "weights_file": weights_file,
                "hat_bits": hat_bits,
                "allow_pickle": allow_pickle,
            }
        },
    ]


@register_recipe(
    "socket",
    paper="Joshi et al., 2026, 'SOCKET: Soft Collision Kernel EsTimator for Sparse Attention' "
    "(arXiv 2602.06283; the reference sparse-attention-hub's docs/baselines/Socket.md): "
    "sink 128 + local 128 + top-k by soft collisions in 60 tables of 12 planes, tau 0.3.",
)
def socket(
    heavy_size: Size = 0.2,
    sink_size: Size = 128,
    window_size: Size = 128,
    lsh_k: int = 12,
    lsh_l: int = 60,
    tau: float = 0.3,
) -> MaskerList:
    return [
        {"sink": {"sink_size": sink_size}},
        {"local": {"window_size": window_size}},
        {"socket": {"heavy_size": heavy_size, "lsh_k": lsh_k, "lsh_l": lsh_l, "tau": tau}},
    ]


# ---------------------------------------------------------------------- KV-cache eviction


@register_recipe(
    "snapkv",
    paper="Li et al., 2024, 'SnapKV: LLM Knows What You are Looking for Before Generation' "
    "(as kvpress's SnapKVPress): observation window 64, pooling kernel 5; compression_ratio "
    "of the context's KV pairs removed per layer and KV head.",
)
def snapkv(
    compression_ratio: float = 0.5,
    query_aware: bool = False,
    window_size: int = 64,
    kernel_size: int = 5,
) -> MaskerList:
    return [
        {
            "snapkv": {
                "compression_ratio": compression_ratio,
                "query_aware": query_aware,
                "window_size": window_size,
                "kernel_size": kernel_size,
            }
        }
    ]


@register_recipe(
    "knorm",
    paper="Devoto et al., 2024, 'A Simple and Effective L2 Norm-Based Strategy for KV Cache "
    "Compression' (as kvpress's KnormPress): the keys of smallest L2 norm kept.",
)
def knorm(compression_ratio: float = 0.5, query_aware: bool = False) -> MaskerList:
    return [{"knorm": {"compression_ratio": compression_ratio, "query_aware": query_aware}}]


@register_recipe(
    "tova",
    paper="Oren et al., 2024, 'Transformers are Multi-State RNNs' (TOVA, as kvpress's "
    "TOVAPress): the last query's attention averaged over heads.",
)
def tova(compression_ratio: float = 0.5, query_aware: bool = False) -> MaskerList:
    return [{"tova": {"compression_ratio": compression_ratio, "query_aware": query_aware}}]


for _name, _paper, _build in EVICTION_RECIPES:  # h2o, ..., streaming_llm_eviction
    register_recipe(_name, _paper)(_build)

for _name, _paper, _prefill_build in PREFILL_RECIPES:  # block_top_k_prefill, flexprefill, ...
    register_recipe(_name, _paper)(_prefill_build)


__all__ = [
    "Recipe",
    "available_recipes",
    "describe_recipes",
    "expand_recipe",
    "get_recipe",
    "register_recipe",
]

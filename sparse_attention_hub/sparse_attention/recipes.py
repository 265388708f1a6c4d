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

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from sparse_attention_hub.sparse_attention.maskers.base import Size
from sparse_attention_hub.sparse_attention.recipes_eviction import EVICTION_RECIPES
from sparse_attention_hub.sparse_attention.recipes_prefill import PREFILL_RECIPES

MaskerList = list[dict[str, dict[str, Any]]]
#: What a builder returns: a masker list, or a dict with these keys (``maskers`` optional).
BUILT_KEYS = ("maskers", "prefill_maskers", "prefill_block_size")
HEAVY_PARTS = ("oracle_top_k", "hashattention")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One named stack: ``build(**params)`` gives its masker list (or a dict of
    :data:`BUILT_KEYS`); ``defaults`` are every parameter's default (``dense_layers``
    included)."""

    name: str
    paper: str
    build: Callable[..., Any]
    defaults: Mapping[str, Any]

    def expand(self, **params: Any) -> dict[str, Any]:
        """``{"maskers": [...], "dense_layers": [...]}`` (the ``ResearchAttentionConfig``
        dict form; plus ``"prefill_maskers"`` and ``"prefill_block_size"`` where the builder
        gives them) for the defaults overridden by ``params``.

        Raises:
            ValueError: an unknown parameter, naming the recipe's parameters.
        """
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for recipe {self.name!r}; its parameters: "
                + ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
            )
        values = {**self.defaults, **params}
        layers = values.pop("dense_layers")
        built = self.build(**values)
        if not isinstance(built, Mapping):
            return {"maskers": built, "dense_layers": list(layers or [])}
        unknown = sorted(set(built) - set(BUILT_KEYS))
        if unknown:
            raise TypeError(
                f"recipe {self.name!r} built unknown key(s) {unknown}; allowed: {BUILT_KEYS}"
            )
        return {"maskers": [], **built, "dense_layers": list(layers or [])}


_RECIPES: dict[str, Recipe] = {}


def register_recipe(
    name: str, paper: str, dense_layers: tuple[int, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Function decorator: register ``fn(**params) -> masker list`` (or a dict of
    :data:`BUILT_KEYS`) as recipe ``name``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _RECIPES:
            raise ValueError(f"recipe name {name!r} is already registered")
        defaults: dict[str, Any] = {}
        for param in inspect.signature(fn).parameters.values():
            if param.default is inspect.Parameter.empty:
                raise TypeError(f"recipe {name!r}: parameter {param.name!r} needs a default")
            defaults[param.name] = param.default
        defaults["dense_layers"] = list(dense_layers)
        _RECIPES[name] = Recipe(name, paper, fn, defaults)
        return fn

    return decorate


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ValueError listing the known ones otherwise."""
    recipe = _RECIPES.get(name) if isinstance(name, str) else None
    if recipe is None:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(_RECIPES)}")
    return recipe


def available_recipes() -> list[str]:
    """Recipe names in registration order."""
    return list(_RECIPES)


def expand_recipe(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"maskers": [...], "dense_layers": [...]}`` (and the prefill keys of a prefill
    recipe) of recipe ``name`` with ``params``."""
    return get_recipe(name).expand(**dict(params or {}))


def describe_recipes() -> list[tuple[str, str, str]]:
    """(name, expansion with the defaults, paper) of every recipe, for ``sah list recipes``."""
    rows = []
    for name, recipe in _RECIPES.items():
        expanded = recipe.expand()
        text = _stack_text(expanded["maskers"])
        if expanded.get("prefill_maskers"):
            decode = text or "dense decode"
            text = f"prefill {_stack_text(expanded['prefill_maskers'])}; {decode}"
        layers = expanded["dense_layers"]
        text += f"; dense layers {layers}" if layers else ""
        params = ", ".join(f"{k}={v!r}" for k, v in recipe.defaults.items())
        rows.append((name, f"{text}\nparameters: {params}", recipe.paper))
    return rows


def _stack_text(maskers: MaskerList) -> str:
    """``sink(sink_size=4) + local(window_size=64)`` of a masker list."""
    return " + ".join(
        f"{masker}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
        for entry in maskers
        for masker, params in entry.items()
    )


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

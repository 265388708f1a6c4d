"""The attention-interface arguments the research attention accepts, and the dense reference
its output error is measured against.

``check_attention_kwargs`` refuses any argument a model passes that is neither handled nor known
to leave attention unchanged: a transformers release that adds one fails loudly instead of being
ignored.
"""

from __future__ import annotations

from typing import Any

import torch

from sparse_attention_hub.sparse_attention.attention import masked_attention

#: Attention-interface keyword arguments the research attention uses: kept in
#: ``AttentionInputs.extras`` (``sliding_window`` is applied through the attention mask, which
#: the adapter's mask function builds with the window).
HANDLED_KWARGS = frozenset(
    {
        "scaling",
        "dropout",
        "output_attentions",
        "layer_idx",
        "query_start",
        "position_ids",
        "s_aux",
        "sinks",
        "softcap",
        "sliding_window",
        "is_causal",
    }
)
#: Arguments transformers passes on through every layer that do not change attention.
IGNORED_KWARGS = frozenset(
    {
        "cache_position",
        "use_cache",
        "past_key_values",
        "cache",
        "past_key_value",
        "output_hidden_states",
        "output_router_logits",
        "return_dict",
        "num_items_in_batch",
        "logits_to_keep",
        "position_embeddings",
        "token_type_ids",
    }
)


def check_attention_kwargs(
    kwargs: dict[str, Any], module: torch.nn.Module | None, model: Any = None
) -> None:
    """ValueError for any keyword argument the research attention does not handle and that is
    not None (e.g. packed-sequence ``cu_seq_lens_q``): nothing the model asks for is dropped.
    The message names the argument, the attention module's class and the model's class."""
    unknown = sorted(
        name
        for name, value in kwargs.items()
        if value is not None and name not in HANDLED_KWARGS and name not in IGNORED_KWARGS
    )
    if unknown:
        owner = "custom_attention" if module is None else type(module).__name__
        if model is not None:
            owner = f"{type(model).__name__} ({owner})"
        raise ValueError(
            f"{owner} passed attention argument(s) {unknown} that the research attention does "
            f"not handle; handled: {sorted(HANDLED_KWARGS)}"
        )


def dense_reference_output(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    scores: torch.Tensor,
    sinks: torch.Tensor | None,
) -> torch.Tensor:
    """Dense attention (B, Q, H, D) from precomputed (B, H, Q, K) scores: the error baseline."""
    out, _ = masked_attention(queries, keys, values, None, sinks=sinks, scores=scores)
    return out


def relative_l2_error(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """||output - reference|| / ||reference|| in fp32, as a 0-dim tensor (0 when both are 0)."""
    diff = torch.linalg.vector_norm((output.float() - reference.float()).reshape(-1))
    norm = torch.linalg.vector_norm(reference.float().reshape(-1))
    return diff / norm.clamp_min(torch.finfo(torch.float32).tiny)

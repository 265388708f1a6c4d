"""The README's "a new method is one file" snippet, run exactly as printed there."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    ResearchAttention,
    ResearchAttentionConfig,
)
from sparse_attention_hub.sparse_attention.maskers import describe_maskers

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_masker_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    after = text[text.index("A new method is one file") :]
    match = re.search(r"```python\n(.*?)```", after, flags=re.DOTALL)
    assert match is not None, "no python block after 'A new method is one file' in README.md"
    return match.group(1)


def test_the_readme_masker_runs(scratch_masker_registry: None) -> None:
    snippet = readme_masker_snippet()
    assert 15 <= len([line for line in snippet.splitlines() if line.strip()]) <= 25
    namespace: dict[str, object] = {"__name__": "readme_masker"}
    exec(compile(snippet, str(README), "exec", dont_inherit=True), namespace)
    assert "key_norm" in [name for name, _, _ in describe_maskers()]
    cfg = ResearchAttentionConfig.from_dict(
        {"maskers": [{"sink": {"sink_size": 1}}, {"key_norm": {"heavy_size": 2}}]}
    )
    keys = torch.zeros(1, 1, 6, 4)
    keys[0, 0, :, 0] = torch.tensor([9.0, 1.0, 5.0, 2.0, 7.0, 3.0])
    inputs = AttentionInputs(torch.randn(1, 2, 1, 4), keys, torch.randn(1, 1, 6, 4))
    mask = ResearchAttention.create_from_config(cfg).build_mask(inputs)
    # the sink takes key 0 (norm 9); the two largest norms left are keys 4 and 2
    assert mask.render(0, 0) == mask.render(0, 1) == "#.#.#."
    out, _ = ResearchAttention.create_from_config(cfg).custom_attention(
        None, inputs.queries, keys, inputs.values, None
    )
    assert out.shape == (1, 1, 2, 4) and torch.isfinite(out).all()

"""Every registered masker example's decode call runs on a device other than the CPU without
mixing devices: the call's queries, keys, values and the masker's state live on the ``meta``
device, so any tensor a masker makes on the CPU by default (``torch.arange(n)`` without
``device=``, a generator's draw left on the CPU, a cached table never moved) fails the call
with "not on the expected device". This is the first error a GPU run would meet; no GPU is
needed to find it.

The state is built on the CPU by the call before (a build may read values back, which a meta
tensor cannot) and moved to ``meta``; the call extends it by one key, as a decode step does.
Every state build that reads nothing back runs on ``meta`` as well. Maskers take the accelerator path (``device_paths.CPU_READS_FREE`` off). ``meta`` has no
random generator: vAttention's per-call generator is left out (``torch.rand`` draws without
one), the only difference from the call a GPU runs. The prefill maskers' selections run on
``meta`` too (those that read no value back).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sparse_attention_hub.sparse_attention import ResearchAttention
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    SinkMaskerConfig,
    create_masker,
    masker_class,
)
from sparse_attention_hub.sparse_attention.prefill.attention import prefill_inputs
from sparse_attention_hub.sparse_attention.prefill.registry import (
    create_prefill_masker,
    prefill_config_from_dict,
)
from tests.support.devices import state_to
from tests.support.op_count import DECODE_SHAPE, decode_call, example_configs, example_ids

from .prefill.test_every_prefill_masker import SMALL

K_LEN = 2048
META = torch.device("meta")


@pytest.fixture(autouse=True)
def accelerator_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path a GPU runs (no host reads), and no generator on ``meta`` (see the module)."""
    from sparse_attention_hub.sparse_attention.maskers import device_paths, vattention

    monkeypatch.setattr(device_paths, "CPU_READS_FREE", False)
    monkeypatch.setattr(vattention, "call_generator", lambda seed, inputs: None)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("device_artefacts")


@pytest.mark.parametrize("index", range(len(example_ids())), ids=example_ids())
def test_a_decode_call_keeps_every_tensor_on_the_calls_device(index: int, artefacts: Path) -> None:
    config = example_configs(artefacts)[index]
    call = decode_call(config, K_LEN)
    for entry in call.attention.states._entries.values():
        entry.value = state_to(entry.value, META)
    shape = DECODE_SHAPE
    q = torch.empty(1, shape.heads, 1, shape.head_dim, device=META, dtype=torch.bfloat16)
    k = torch.empty(1, shape.kv_heads, K_LEN, shape.head_dim, device=META, dtype=torch.bfloat16)
    with torch.no_grad():
        out, _ = call.attention.custom_attention(
            None, q, k, torch.empty_like(k), None, layer_idx=0, query_start=K_LEN - 1
        )
    assert out.device == META and out.shape == (1, 1, shape.heads, shape.head_dim)  # (B, Q, H, D)
    assert masker_class(config).name  # every registered masker has an example (op-count test)


#: Stateful maskers whose state build reads values back (once per context, not per token):
#: their builds are not run on ``meta`` (their decode calls are, above).
BUILD_READS_BACK = {
    "magicpig": "the largest hash bucket sizes every later count (lsh_index.longest_run)",
    "pq_cache": "k-means stops when its assignments stop changing (official code)",
}


@pytest.mark.parametrize("index", range(len(example_ids())), ids=example_ids())
def test_a_state_build_and_its_first_call_stay_on_the_calls_device(
    index: int, artefacts: Path
) -> None:
    config = example_configs(artefacts)[index]
    if masker_class(config).name in BUILD_READS_BACK:
        pytest.skip(BUILD_READS_BACK[masker_class(config).name])
    chain = [SinkMaskerConfig(16), LocalMaskerConfig(16), config]
    attention = ResearchAttention([create_masker(c) for c in chain])
    shape = DECODE_SHAPE
    q = torch.empty(1, shape.heads, 1, shape.head_dim, device=META, dtype=torch.bfloat16)
    k = torch.empty(1, shape.kv_heads, K_LEN, shape.head_dim, device=META, dtype=torch.bfloat16)
    with torch.no_grad():
        out, _ = attention.custom_attention(
            None, q, k, torch.empty_like(k), None, layer_idx=0, query_start=K_LEN - 1
        )
    assert out.device == META


#: Prefill maskers whose selection reads values back to size its tensors, as their official
#: code does (a prefill reads once per layer and context, not per token): not run on ``meta``.
READS_BACK = {"flexprefill": "its per-head block budgets size a top-k (official get_active_blocks)"}


@pytest.mark.parametrize("name", sorted(set(SMALL) - set(READS_BACK)))
def test_a_prefill_selection_stays_on_the_calls_device(name: str) -> None:
    masker = create_prefill_masker(prefill_config_from_dict(name, SMALL[name]))
    q = torch.empty(1, 4, 150, 16, device=META)
    k = torch.empty(1, 2, 190, 16, device=META)
    selection = masker.select(prefill_inputs(q, k, 0.25, {"query_start": 40}, 16, 2**20))
    assert selection.blocks.device == META
    if selection.mask_mod is not None:  # its tables are read at the kernel's indices
        index = torch.zeros(1, dtype=torch.long, device=META)  # (a batch of one pair)
        assert selection.mask_mod(index, index, index, index).device == META

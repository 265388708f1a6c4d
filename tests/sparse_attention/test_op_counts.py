"""One decode call of one layer, per registered masker example: the aten ops it dispatches
do not grow with K (a GPU is launch-bound otherwise), and none of them waits for the device.

The call (``tests/support/op_count.py``): Sink(16) + Local(16) + the example, bf16 K/V,
H=4, Hkv=2, D=16, Q=1, the masker's state built on K-1 keys by the call before.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from sparse_attention_hub.sparse_attention.maskers import (
    MaskerConfig,
    available_maskers,
    masker_class,
)
from tests.support.op_count import (
    OpCounter,
    count_ops,
    decode_call,
    example_configs,
    example_ids,
)

#: 16k, not 8k: the examples' int sizes of 10,000 tokens would make the short call a
#: shortcut (a full mask) and the long one the method itself.
SHORT_K, LONG_K = 16 * 1024, 128 * 1024
#: The op count of a decode call at 128k may be at most this multiple of the one at 8k.
MAX_GROWTH = 2.0

IDS = example_ids()


@pytest.fixture(autouse=True)
def accelerator_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the path a GPU runs: on a CPU, where a host read waits for nothing, some maskers
    take a cheaper data-dependent path (``maskers.device_paths``)."""
    from sparse_attention_hub.sparse_attention.maskers import device_paths

    monkeypatch.setattr(device_paths, "CPU_READS_FREE", False)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the artefact maskers' example files (written once for the module)."""
    return tmp_path_factory.mktemp("op_count_artefacts")


@functools.cache
def _counts(index: int, folder: Path) -> tuple[MaskerConfig, OpCounter, OpCounter]:
    """(config, ops at SHORT_K, ops at LONG_K) of example ``index``, counted once."""
    config = example_configs(folder)[index]
    short = count_ops(decode_call(config, SHORT_K).run)
    long = count_ops(decode_call(config, LONG_K).run)
    return config, short, long


def test_every_registered_masker_has_an_example(tmp_path: Path) -> None:
    names = {masker_class(c).name for c in example_configs(tmp_path)}
    assert names == set(available_maskers())
    assert len(IDS) == len(example_configs(tmp_path))


@pytest.mark.parametrize(
    "fn, waits",
    [
        (lambda x, m, r: x.sum().item(), True),
        (lambda x, m, r: bool(m.any()), True),
        (lambda x, m, r: x[m], True),
        (lambda x, m, r: x.clone().masked_fill_(m, 0.0), False),
        (lambda x, m, r: torch.where(m), True),
        (lambda x, m, r: torch.where(m, x, 0.0), False),
        (lambda x, m, r: x.repeat_interleave(r, dim=0), True),
        (lambda x, m, r: x.repeat_interleave(r, dim=0, output_size=4), False),
        (lambda x, m, r: x.repeat_interleave(2, dim=0), False),
        (lambda x, m, r: torch.bincount(r), True),
        (lambda x, m, r: x.masked_select(m), True),
        (lambda x, m, r: x.topk(2, dim=-1), False),
    ],
)
def test_the_counter_sees_host_waits(fn, waits: bool) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(4, 6)
    ops = count_ops(lambda: fn(x, x > 0, torch.tensor([1, 2, 1, 0])))
    assert bool(ops.syncs) == waits, ops.syncs
    assert ops.total >= 1


@pytest.mark.parametrize("index", range(len(IDS)), ids=IDS)
def test_decode_ops_do_not_grow_with_k(index: int, artefacts: Path) -> None:
    config, short, long = _counts(index, artefacts)
    assert long.total <= MAX_GROWTH * short.total, (
        f"{config}: {long.total} aten ops per decode call at K={LONG_K} against "
        f"{short.total} at K={SHORT_K}; grew most: {_growth(short, long)}"
    )


@pytest.mark.parametrize("index", range(len(IDS)), ids=IDS)
def test_decode_call_never_waits_for_the_device(index: int, artefacts: Path) -> None:
    config, short, long = _counts(index, artefacts)
    syncs = sorted(set(short.syncs + long.syncs))
    assert not syncs, f"{config}: a decode call waits for the device: {syncs}"


def _growth(short: OpCounter, long: OpCounter) -> list[tuple[str, int, int]]:
    """The five ops whose count grew most: (op, count at short K, count at long K)."""
    rows = [(op, short.counts[op], n) for op, n in long.counts.items()]
    return sorted(rows, key=lambda r: r[1] - r[2])[:5]

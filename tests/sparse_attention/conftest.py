"""Fixtures shared by the sparse-attention tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=[True, False], ids=["cpu-path", "accelerator-path"])
def device_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test on both paths of ``maskers.device_paths``: the host-reading one a CPU takes
    and the sync-free one an accelerator takes."""
    from sparse_attention_hub.sparse_attention.maskers import device_paths

    monkeypatch.setattr(device_paths, "CPU_READS_FREE", request.param)
    return bool(request.param)

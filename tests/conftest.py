"""Shared fixtures: tiny local models, built once per test session; nothing downloads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The test-only fault benchmark is named by its import path (tests.support.fault_benchmark:...):
# the repository root must be importable here, in spawned workers and in `sah` subprocesses.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402 - after the environment above

from sparse_attention_hub.testing import make_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama (multi-head attention: 4 query heads, 4 key/value heads)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_llama") / "model", arch="llama", seed=0)


@pytest.fixture(scope="session")
def tiny_gqa_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Qwen2 with grouped-query attention (4 query heads, 2 key/value heads)."""
    return make_tiny_model(
        tmp_path_factory.mktemp("tiny_qwen2") / "model",
        arch="qwen2",
        seed=0,
        num_key_value_heads=2,
    )


@pytest.fixture
def scratch_masker_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Maskers registered in the test (decorator, import path, entry point) vanish afterwards."""
    from sparse_attention_hub.sparse_attention.maskers import registry

    monkeypatch.setattr(registry, "_BY_NAME", dict(registry._BY_NAME))
    monkeypatch.setattr(registry, "_BY_CONFIG", dict(registry._BY_CONFIG))

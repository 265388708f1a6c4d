"""The ``--model_args`` of the lm-eval model ``sah``, checked before the model loads."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sparse_attention_hub.lm_eval.sparse_config import parse_sparse_config

logger = logging.getLogger(__name__)

DENSITY_METRIC = "research_attention_density"


@dataclasses.dataclass
class SahOptions:
    """The model arguments of ``--model sah``.

    Attributes:
        pretrained: a hub id or a local model directory.
        sparse_config: see ``sparse_config.py`` (None: the model's own attention).
        dtype: e.g. "bfloat16", "float32", "auto" (default: transformers' default).
        device: "cpu", "cuda", "cuda:N" (lm-eval's ``--device``); a CUDA device on a machine
            without CUDA falls back to the CPU with a warning, as lm-eval's ``hf`` does.
        max_length: the longest window in tokens (default: the model config's positions).
        max_gen_toks: generation length when a task sets none (256, as ``hf``).
        add_bos_token, prefix_token_id: as lm-eval's ``hf`` model.
        trust_remote_code, revision: passed to ``from_pretrained``.
        micro_metrics_dir: write MicroMetricLogger events (``micro_metrics.jsonl``) there.
        micro_metrics: the metrics to log there, "+"-separated, or "all"
            (default ``research_attention_density``).
        batch_size, max_batch_size: accepted from lm-eval and ignored (one request at a time).
    """

    pretrained: str
    sparse_config: Any = None
    dtype: str | None = None
    device: str | None = None
    max_length: int | None = None
    max_gen_toks: int = 256
    add_bos_token: bool | None = None
    prefix_token_id: int | None = None
    trust_remote_code: bool | None = None
    revision: str | None = None
    micro_metrics_dir: str | None = None
    micro_metrics: str = DENSITY_METRIC
    batch_size: Any = 1
    max_batch_size: Any = None
    sparse_attention_config: Any = dataclasses.field(init=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.pretrained, str) or not self.pretrained:
            raise ValueError(
                f"sah: pretrained={self.pretrained!r} must name a model (a hub id or a directory)"
            )
        for name in ("max_length", "prefix_token_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"sah: {name}={value!r} must be an int >= 0")
        if not isinstance(self.max_gen_toks, int) or self.max_gen_toks < 1:
            raise ValueError(f"sah: max_gen_toks={self.max_gen_toks!r} must be an int >= 1")
        if self.batch_size not in (1, "1", None):
            logger.info("sah: batch_size=%r ignored: requests run one at a time", self.batch_size)
        self.sparse_attention_config = parse_sparse_config(self.sparse_config)
        self.device = _usable_device(self.device)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> SahOptions:
        """From lm-eval's model arguments; an unknown one is a ValueError listing the known."""
        known = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ValueError(f"sah: unknown model argument(s) {unknown}; known: {', '.join(known)}")
        if "pretrained" not in kwargs:
            raise ValueError("sah: --model_args needs pretrained=MODEL (a hub id or a directory)")
        return cls(**kwargs)

    def model_kwargs(self) -> dict[str, Any]:
        """``from_pretrained`` arguments for the model."""
        given = {
            "dtype": self.dtype,
            "trust_remote_code": self.trust_remote_code,
            "revision": self.revision,
        }
        return {k: v for k, v in given.items() if v is not None}

    def tokenizer_kwargs(self) -> dict[str, Any]:
        """``from_pretrained`` arguments for the tokenizer."""
        return {"revision": self.revision} if self.revision is not None else {}

    def configure_micro_metrics(self) -> None:
        """Point the MicroMetricLogger at ``micro_metrics_dir`` (nothing when it is None)."""
        if self.micro_metrics_dir is None:
            return
        import sparse_attention_hub.sparse_attention  # noqa: F401  (registers the metrics)
        from sparse_attention_hub.metric_logging import MicroMetricLogger

        names = "all" if self.micro_metrics == "all" else self.micro_metrics.split("+")
        MicroMetricLogger().configure_logging(self.micro_metrics_dir, enabled_metrics=names)

    def flush_micro_metrics(self) -> None:
        """Write the pending micro-metric events (after each batch of lm-eval requests)."""
        if self.micro_metrics_dir is not None:
            from sparse_attention_hub.metric_logging import MicroMetricLogger

            MicroMetricLogger().flush()


def _usable_device(device: str | None) -> str | None:
    """``device``, or "cpu" (with a warning) for a CUDA device where CUDA is not available
    (lm-eval's command line asks for cuda:0 by default)."""
    import torch

    if isinstance(device, str) and device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("sah: device=%r but CUDA is not available: running on the CPU", device)
        return "cpu"
    return device

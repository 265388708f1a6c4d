"""Per-call cost of MicroMetricLogger on the attention hot path, against the seed's design.

Measures, in one run, microseconds per call for:
- the disabled check ``is_metric_enabled`` on a metric that is off (and, for information,
  ``MicroMetricLogger().is_metric_enabled(...)``: hot paths should keep the instance);
- an enabled ``log()`` (flush every 1000 events included, amortised);
- ``log()`` at sampling_factor 0.1;
- ``log()`` of a 0-dim torch tensor value (converted at flush, batched);
- a baseline logger written the seed's way: inspect-based location, ``datetime.now()``, a
  dataclass per event, ``asdict`` + ``json.dumps`` per event at flush.

Targets: enabled log <= 3 us and >= 4x faster than the baseline; disabled check <= 0.1 us.
Writes only under a temporary directory. Prints one JSON line last.

    .venv/bin/python bench/logger_overhead.py [--calls 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sparse_attention_hub.metric_logging import MicroMetricLogger

METRIC = "bench_metric"


@dataclass
class SeedLogEvent:
    timestamp: datetime
    metric: str
    value: Any
    metadata: dict[str, Any]
    location: str


class SeedLogger:
    """The seed's per-event work, reduced to the log/flush path (no singleton, no sampling)."""

    def __init__(self, log_path: str, flush_every: int = 1000) -> None:
        self.log_path = log_path
        self.flush_every = flush_every
        self.enabled_metrics = {METRIC}
        self.log_queue: deque[SeedLogEvent] = deque(maxlen=10000)

    def _get_calling_location(self) -> str:
        try:
            frame = inspect.currentframe()
            caller = frame.f_back.f_back if frame and frame.f_back else None
            if caller is None:
                return "unknown"
            module = inspect.getmodule(caller)
            module_name = module.__name__ if module else "unknown"
            function_name = caller.f_code.co_name
            if "self" in caller.f_locals:
                class_name = caller.f_locals["self"].__class__.__name__
                return f"{module_name}.{class_name}.{function_name}"
            return f"{module_name}.{function_name}"
        except Exception:
            return "unknown"

    def log(self, identifier: str, value: Any, metadata: dict[str, Any] | None = None) -> None:
        if identifier not in self.enabled_metrics:
            return
        event = SeedLogEvent(
            timestamp=datetime.now(),
            metric=identifier,
            value=value,
            metadata=metadata or {},
            location=self._get_calling_location(),
        )
        self.log_queue.append(event)
        if len(self.log_queue) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        with open(os.path.join(self.log_path, "micro_metrics.jsonl"), "a", encoding="utf-8") as f:
            while self.log_queue:
                record = asdict(self.log_queue.popleft())
                record["timestamp"] = record["timestamp"].isoformat()
                f.write(json.dumps(record) + "\n")


class FakeAttentionLayer:
    """Calls the logger from a method, as an attention layer would."""

    def __init__(self, logger: Any, value: Any) -> None:
        self.logger = logger
        self.value = value

    def run_log(self, calls: int) -> None:
        logger, value = self.logger, self.value
        for layer_idx in range(calls):
            logger.log(METRIC, value, {"layer_idx": layer_idx})

    def run_disabled_check(self, calls: int) -> None:
        logger = self.logger
        for _ in range(calls):
            logger.is_metric_enabled("disabled_metric")

    def run_construct_and_check(self, calls: int) -> None:
        for _ in range(calls):
            MicroMetricLogger().is_metric_enabled("disabled_metric")

    def run_empty(self, calls: int) -> None:
        for _ in range(calls):
            pass


def best_us_per_call(run: Callable[[int], None], calls: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(calls)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def measure(calls: int, repeats: int, base: Path) -> dict[str, float]:
    MicroMetricLogger.register_metric(METRIC, float)
    logger = MicroMetricLogger(log_path=base / "ours", enabled_metrics=[METRIC], flush_every=1000)
    layer = FakeAttentionLayer(logger, 0.5)
    figures = {"loop_overhead_us": best_us_per_call(layer.run_empty, calls, repeats)}
    figures["disabled_check_us"] = best_us_per_call(layer.run_disabled_check, calls * 10, repeats)
    figures["construct_and_check_us"] = best_us_per_call(
        layer.run_construct_and_check, calls, repeats
    )
    figures["enabled_log_us"] = best_us_per_call(layer.run_log, calls, repeats)
    logger.configure_logging(base / "sampled", [METRIC], sampling_factor=0.1, seed=0)
    figures["sampled_0.1_log_us"] = best_us_per_call(layer.run_log, calls, repeats)
    logger.configure_logging(base / "tensor", [METRIC])
    import torch

    layer.value = torch.tensor(0.5)
    figures["enabled_log_tensor_us"] = best_us_per_call(layer.run_log, calls, repeats)
    logger.flush()
    os.makedirs(base / "seed", exist_ok=True)
    seed_layer = FakeAttentionLayer(SeedLogger(str(base / "seed")), 0.5)
    figures["baseline_seed_log_us"] = best_us_per_call(seed_layer.run_log, calls, repeats)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sah_logger_bench_") as tmp:
        figures = measure(args.calls, args.repeats, Path(tmp))
    ratio = figures["baseline_seed_log_us"] / figures["enabled_log_us"]
    for name, value in figures.items():
        print(f"{name:>24}: {value:8.3f} us")
    result = {
        "bench": "logger_overhead",
        **{name: round(value, 4) for name, value in figures.items()},
        "speedup_vs_baseline": round(ratio, 2),
        "targets_met": {
            "enabled_log_le_3us": figures["enabled_log_us"] <= 3.0,
            "speedup_ge_4x": ratio >= 4.0,
            "disabled_check_le_0.1us": figures["disabled_check_us"] <= 0.1,
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

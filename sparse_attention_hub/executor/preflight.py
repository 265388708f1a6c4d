"""Know before the GPUs start: every model and dataset of a matrix, resolved once, up front.

:func:`preflight` asks about each model (config and tokenizer files) and each dataset a
benchmark reads (hub, local ``data_dir`` files), once each, with a short timeout and no
retry (:mod:`.hub_check`). The executor runs it in the parent before any worker starts and
raises :class:`PreflightError` listing every missing item; ``sah run --dry-run`` prints the
report line by line. Models of a matrix whose benchmarks all declare ``requires_model =
False`` are not checked (no worker loads them).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.executor.config import AdapterConfig, BenchmarkConfig
from sparse_attention_hub.executor.hub_check import DEFAULT_TIMEOUT, HubProbe, redact

log = logging.getLogger(__name__)


class PreflightError(ValueError):
    """Models or datasets of the matrix cannot be had, or settings do not fit a model's
    config (:mod:`.model_limits`); ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} problem(s), so no worker was started (models or datasets "
            f"that cannot be had, settings a model does not allow):\n{lines}\n"
            "(executor.preflight: false skips this check)"
        )


@dataclass
class PreflightReport:
    """One line per model and dataset checked, the problems among them, notes (settings
    adjusted to a model, a config that could not be read), and the time taken."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def raise_if_problems(self) -> None:
        if self.problems:
            raise PreflightError(self.problems)


def preflight_timeout() -> float:
    """Seconds per hub request: HF_HUB_ETAG_TIMEOUT (huggingface_hub's metadata timeout) if
    set, else 10."""
    raw = os.environ.get("HF_HUB_ETAG_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def _benchmarks(benchmark_configs: list[BenchmarkConfig]) -> list[tuple[str, Any]]:
    from sparse_attention_hub.benchmarks import create_benchmark_instance

    return [
        (
            config.benchmark_name,
            create_benchmark_instance(
                config.benchmark_name, subsets=config.subsets, **(config.benchmark_kwargs or {})
            ),
        )
        for config in benchmark_configs
    ]


def preflight(
    model_names: list[str],
    benchmark_configs: list[BenchmarkConfig],
    adapter_config: AdapterConfig,
    timeout: float | None = None,
    skip_models: dict[str, str] | None = None,
) -> PreflightReport:
    """Check every model and dataset of the matrix once; never raises for a missing item.

    ``skip_models`` maps a model name to the line to show instead of checking it (a tiny
    model that is built when the run starts).
    """
    start = time.perf_counter()
    probe = HubProbe(preflight_timeout() if timeout is None else timeout)
    report = PreflightReport()
    benchmarks = _benchmarks(benchmark_configs)
    revision = (adapter_config.model_kwargs or {}).get("revision")
    if any(getattr(bench, "requires_model", True) for _, bench in benchmarks):
        for name in dict.fromkeys(model_names):
            if skip_models and name in skip_models:
                report.lines.append(f"model {name}: {skip_models[name]}")
                continue
            check = probe.check_model(name, revision)
            _add(report, f"model {name}", check.ok, check.how)
    seen: set[Any] = set()
    for bench_name, bench in benchmarks:
        data_needs = getattr(bench, "data_needs", None)  # a plugin may not subclass Benchmark
        for need in data_needs() if callable(data_needs) else []:
            if need in seen:
                continue
            seen.add(need)
            check = probe.check_data(need)
            _add(report, f"{bench_name}: {need.label}", check.ok, check.how)
    if not report.lines:
        report.lines.append("nothing to fetch (generated data, no model to load)")
    report.seconds = time.perf_counter() - start
    return report


def _add(report: PreflightReport, what: str, ok: bool, how: str) -> None:
    text = redact(f"{what}: {how}")
    report.lines.append(("ok      " if ok else "MISSING ") + text)
    if not ok:
        report.problems.append(text)

"""Before any worker starts: the matrix checked and expanded, stale cells' files moved aside."""

from __future__ import annotations

import logging
from typing import Any

from sparse_attention_hub.cell_store import (
    CORRUPT,
    STALE,
    CellState,
    drop_temp_files,
    is_disk_error,
    move_to_stale,
)
from sparse_attention_hub.executor.config import (
    DISK,
    OTHER,
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkStub,
)
from sparse_attention_hub.executor.matrix import expand_matrix
from sparse_attention_hub.executor.protocol import CellOutcome, CellTask
from sparse_attention_hub.executor.validation import (
    ExecutorConfigError,
    gpu_config_problems,
    kwargs_problems,
    matrix_problems,
    metric_problems,
    shared_directory_problems,
)

log = logging.getLogger(__name__)


def checked_stubs(
    base_dir: str,
    enabled_metrics: Any,
    model_names: list[str],
    sparse_attention_configs: list[tuple[str, Any]],
    benchmark_configs: list[BenchmarkConfig],
    adapter_config: AdapterConfig,
    generation_kwargs: dict[str, Any] | None,
    request_kwargs: dict[str, Any] | None,
    on_gpu: bool = False,
) -> list[BenchmarkStub]:
    """Every cell of the matrix with its estimated cost; one ExecutorConfigError listing every
    problem (bad names, configs, kwargs, two cells in one folder; ``on_gpu``: settings a GPU
    cannot run) before anything runs."""
    configs, costs, problems = matrix_problems(
        model_names, sparse_attention_configs, benchmark_configs, adapter_config, base_dir
    )
    if on_gpu:
        problems += gpu_config_problems(configs)
    problems += metric_problems(enabled_metrics)
    problems += kwargs_problems(generation_kwargs=generation_kwargs, request_kwargs=request_kwargs)
    if problems:
        raise ExecutorConfigError(problems)
    stubs = expand_matrix(
        base_dir,
        model_names,
        configs,
        benchmark_configs,
        adapter_config,
        generation_kwargs,
        request_kwargs,
    )
    problems = shared_directory_problems(stubs)
    if problems:
        raise ExecutorConfigError(problems)
    for stub in stubs:
        stub.estimated_cost = costs.get((stub.benchmark_name, stub.subset))
    return stubs


def drop_interrupted_writes(stubs: list[BenchmarkStub]) -> None:
    """Remove the temp files a kill left mid-write in the cells (``.config.json.<x>.tmp``);
    called while the executor holds the results directory's lock."""
    for stub in stubs:
        dropped = drop_temp_files(stub.result_dir)
        if dropped:
            log.info("%s: removed %s left by an interrupted write", stub.cell_id, dropped)


def moves_to_stale(state: CellState) -> bool:
    """Whether a cell's files go to stale/ before it runs (other config, or unreadable)."""
    return state.status == STALE or (state.status == CORRUPT and not state.resumable)


def move_stale_cells(
    plan: list[tuple[BenchmarkStub, CellState]],
) -> tuple[list[str], list[tuple[CellTask, CellOutcome]]]:
    """Move stale (and unreadable) cells' files into stale/; a cell whose files cannot be
    moved (permissions, a full disk) fails and is not run; its old files stay.

    Returns the folders moved to, and a failed outcome per cell that could not be moved.
    """
    moved, unmovable = [], []
    for stub, state in plan:
        if not moves_to_stale(state):
            continue
        try:
            target = move_to_stale(stub.result_dir)
        except OSError as exc:
            category = DISK if is_disk_error(exc) else OTHER
            message = f"could not move its earlier files into stale/: {exc!r}"
            log.error("%s: %s; the cell is not run", stub.cell_id, message)
            outcome = CellOutcome(
                stub.cell_id, False, 0.0, error_type=category, error_message=message
            )
            unmovable.append((CellTask(stub, 0), outcome))
            continue
        log.warning("%s: %s; old files moved to %s", stub.cell_id, state.reason, target)
        moved.append(str(target))
    return moved, unmovable

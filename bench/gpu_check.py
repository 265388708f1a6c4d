"""The checks that need a GPU, in one command: ``make gpu-check`` (under 8 minutes on one GPU).

Nothing is downloaded: the models are random-weight Llamas of Llama-3.1-8B's layer shape
(hidden 4096, 32 query heads, 8 KV heads, head_dim 128, MLP 14336), 2 layers, bf16. Checks,
each printed as one JSON line on stdout (``check``, ``ok``, ``enforced``, its figures; all other
output goes to stderr):

- ``attention_memory``: ``bench/attention_memory.py`` for every registered masker at K=128k,
  Q = 1, 32, 256, all cases in one subprocess (on CUDA the allocator's peak of each call);
  targets as in that bench.
- ``decode_throughput``: ``bench/decode_throughput.py`` on the 2-layer model, 32k context,
  64 tokens: research dense <= 1.1x and sink + local + top-k <= 1.3x the model's own sdpa.
- ``attention_overhead``: ``bench/attention_overhead.py``'s decode step at K=32k for the
  research arms and every method arm (``bench/method_arms.py``), with its targets.
- ``pq_cache_kmeans``: PQCache's state (its batched k-means) on 128k keys on the device, twice:
  both builds equal (deterministic), and the k-means objective within 1 % of the CPU's.
- ``sparse_prefill``: ``bench/prefill.py`` on one layer at L = 32k (compiled flex on the
  device): flex dense <= 1.5x SDPA's causal kernel and ``block_top_k`` at 10 % <= 0.35x flex
  dense, with every registered prefill masker's time and density (on a CPU: L = 256, tiny
  heads, flex eager).
- ``peak_gpu_memory``, ``ray_fractional_gpu``: real cells of the executor
  (``bench/gpu_check_cells.py``).
- ``total``: the whole run's seconds, target <= 480 on CUDA.

The exit status is 1 when an enforced check misses its target or fails. ``--device cpu`` runs
every check at small sizes (a few minutes on 2 cores; a test runs it, so CI keeps this script
working): there the memory and speed targets are reported but not enforced (they are set for
128k on a GPU), the functional checks (k-means, the cells, Ray) are.

    .venv/bin/python bench/gpu_check.py [--device cuda|cpu] [--checks NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import attention_memory
import attention_overhead
import decode_throughput
import prefill
import torch
from gpu_check_cells import check_peak_gpu_memory, check_ray_fractional_gpu, make_model

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers import PQCacheConfig, create_masker

#: Llama-3.1-8B's layer shape, 2 layers.
LLAMA_8B_LAYERS = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 2,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
}
SMALL_LAYERS = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "vocab_size": 1024,
}
MAX_SECONDS = 480


@dataclass(frozen=True)
class Sizes:
    """What each check runs at on one device kind."""

    memory_k: int
    memory_q: tuple[int, ...]
    memory_timeout: float
    overhead_k: int
    overhead_repeats: int
    overhead_warmup: int
    decode_context: int
    decode_tokens: int
    decode_rounds: int
    kmeans_keys: int
    model: dict[str, int] = field(default_factory=dict)
    #: ``bench/prefill.py`` arguments of the ``sparse_prefill`` check
    prefill_args: tuple[str, ...] = ()


#: ``bench/prefill.py`` arguments: one Llama-3.1-8B layer at 32k on a GPU, tiny on a CPU.
PREFILL_GPU = ("--lengths", "32768", "--repeats", "3")
PREFILL_CPU = ("--lengths", "256", "--heads", "4", "--head-dim", "32", "--block-size", "32",
               "--repeats", "1")  # fmt: skip

GPU_SIZES = (131072, (1, 32, 256), 240.0, 32768, 15, 3, 32768, 64, 2, 131072, LLAMA_8B_LAYERS)
SIZES = {
    "cuda": Sizes(*GPU_SIZES, PREFILL_GPU),
    "cpu": Sizes(1024, (1, 16), 600.0, 1024, 1, 1, 256, 4, 1, 2048, SMALL_LAYERS, PREFILL_CPU),
}


@dataclass
class Context:
    """The run's device and sizes, a scratch directory, the study's model (made once)."""

    device: str
    sizes: Sizes
    workdir: Path
    _model_dir: str | None = None

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"

    def model_dir(self) -> str:
        if self._model_dir is None:
            self._model_dir = make_model(self.workdir / "model", self.sizes.model)
        return self._model_dir


def check_attention_memory(ctx: Context) -> dict[str, Any]:
    """Every registered masker's peak memory and ratios at ``memory_k`` keys."""
    s = ctx.sizes
    cases = attention_memory.all_cases()
    qs = list(s.memory_q)
    records = attention_memory.measure_all(
        cases, qs, s.memory_k, ctx.device, one_process=True, timeout=s.memory_timeout
    )
    result = attention_memory.summarise(records, cases, qs, s.memory_k)
    attention_memory.print_table(result)
    keep = ("shape", "q", "peak_mib", "state_build_mib", "maskers", "targets", "errors")
    return {"check": "attention_memory", "ok": result["all_met"], **{k: result[k] for k in keep}}


def check_decode_throughput(ctx: Context) -> dict[str, Any]:
    """Decode time of the research attention against the model's own sdpa."""
    s = ctx.sizes
    model = decode_throughput.build_model(s.decode_context, s.model, torch.bfloat16, ctx.device)
    try:
        result = decode_throughput.measure(
            model, s.decode_context, s.decode_tokens, s.decode_rounds
        )
    finally:
        del model
        if ctx.gpu:
            torch.cuda.empty_cache()
    ok = all(result[name] <= target for name, target in result["targets"].items())
    return {"check": "decode_throughput", "ok": ok, **result}


def check_attention_overhead(ctx: Context) -> dict[str, Any]:
    """Every arm's decode-step time against SDPA on the device."""
    s = ctx.sizes
    device = torch.device(ctx.device)
    timings = attention_overhead.measure(
        s.overhead_k, s.overhead_repeats, device, ctx.workdir, warmup=s.overhead_warmup
    )
    result = attention_overhead.summary(timings, s.overhead_k)
    targets = attention_overhead.targets()
    missed = sorted(name for name, target in targets.items() if cast(float, result[name]) > target)
    return {
        "check": "attention_overhead",
        "ok": not missed,
        "missed": missed,
        **result,
        "targets": targets,
        "missing_arms": attention_overhead.missing_arms(),
    }


def _objective(state: Any, keys: torch.Tensor) -> float:
    """PQ k-means objective: mean squared distance of each key's sub-vectors (B, Hkv, K, D)
    to their centroids."""
    from sparse_attention_hub.sparse_attention.maskers.pq_cache import split_subvectors

    centroids, codes = state.centroids.cpu(), state.codes.cpu()  # (B,Hkv,M,C,D/M), (B,Hkv,M,K)
    b, h, m, c, sub_d = centroids.shape
    sub = split_subvectors(keys.float().cpu(), m)  # (B * Hkv * M, K, D / M)
    flat_codes = codes.reshape(b * h * m, -1, 1).expand(-1, -1, sub_d)
    nearest = centroids.reshape(b * h * m, c, sub_d).gather(1, flat_codes)
    return float(((sub - nearest) ** 2).sum(-1).mean())


def check_pq_cache_kmeans(ctx: Context) -> dict[str, Any]:
    """PQCache's k-means on the device: deterministic, and as good as the CPU's."""
    g = torch.Generator().manual_seed(0)
    n = ctx.sizes.kmeans_keys
    keys = torch.randn(1, 8, n, 128, generator=g, dtype=torch.bfloat16)
    query = torch.randn(1, 32, 1, 128, generator=g, dtype=torch.bfloat16)
    masker: Any = create_masker(PQCacheConfig(heavy_size=0.05))

    def build(device: str) -> tuple[Any, float]:
        inputs = AttentionInputs(query.to(device), keys.to(device), keys.to(device), layer_idx=0)
        start = time.perf_counter()
        state = masker.build_state(inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        return state, (time.perf_counter() - start) * 1e3

    first, first_ms = build(ctx.device)
    second, second_ms = build(ctx.device)
    reference, cpu_ms = build("cpu")
    same = torch.equal(first.codes, second.codes) and torch.equal(first.centroids, second.centroids)
    device_obj, cpu_obj = _objective(first, keys), _objective(reference, keys)
    gap = abs(device_obj - cpu_obj) / cpu_obj
    return {
        "check": "pq_cache_kmeans",
        "ok": same and gap <= 0.01,
        "keys": n,
        "deterministic": same,
        "objective": round(device_obj, 5),
        "cpu_objective": round(cpu_obj, 5),
        "objective_gap": round(gap, 6),
        "build_ms": [round(first_ms, 1), round(second_ms, 1)],
        "cpu_build_ms": round(cpu_ms, 1),
        "target": "deterministic and objective_gap <= 0.01",
    }


def check_sparse_prefill(ctx: Context) -> dict[str, Any]:
    """The sparse prefill engine and every prefill masker against SDPA's causal kernel (flex
    eager off the GPU: the tiny CPU shapes check the script, not the kernel's speed)."""
    previous = os.environ.get(prefill.engine.EAGER_ENV)
    if not ctx.gpu:
        os.environ[prefill.engine.EAGER_ENV] = "1"
    try:
        result = prefill.main(["--device", ctx.device, *ctx.sizes.prefill_args])
    finally:
        if previous is None:
            os.environ.pop(prefill.engine.EAGER_ENV, None)
        else:
            os.environ[prefill.engine.EAGER_ENV] = previous
    keep = ("lengths", "compiled", "targets", "heads", "kv_heads", "dtype", "block_size")
    return {"check": "sparse_prefill", "ok": result["all_met"], **{k: result[k] for k in keep}}


CHECKS: dict[str, tuple[Callable[[Context], dict[str, Any]], bool]] = {
    # name: (check, whether its target decides the exit status off CUDA)
    "attention_memory": (check_attention_memory, False),
    "decode_throughput": (check_decode_throughput, False),
    "attention_overhead": (check_attention_overhead, False),
    "pq_cache_kmeans": (check_pq_cache_kmeans, True),
    "sparse_prefill": (check_sparse_prefill, False),
    "peak_gpu_memory": (lambda c: check_peak_gpu_memory(c.model_dir(), c.workdir, c.gpu), True),
    "ray_fractional_gpu": (
        lambda c: check_ray_fractional_gpu(c.model_dir(), c.workdir, c.gpu),
        True,
    ),
}


def run_check(name: str, ctx: Context) -> dict[str, Any]:
    """One check's record; an exception is a failed check (its error in the record)."""
    check, enforced_off_gpu = CHECKS[name]
    start = time.perf_counter()
    try:
        record = check(ctx)
    except Exception as exc:
        record = {"check": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]}
    record["enforced"] = ctx.gpu or enforced_off_gpu or "error" in record
    record["device"] = ctx.device
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


@contextlib.contextmanager
def json_stdout() -> Iterator[TextIO]:
    """A stream to the real stdout; inside, everything else written to stdout (by this
    process and by the processes it starts) goes to stderr."""
    sys.stdout.flush()
    real = os.fdopen(os.dup(1), "w", buffering=1)
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        real.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=sorted(SIZES), default="cuda")
    parser.add_argument("--checks", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device; use --device cpu")
    start, failed = time.perf_counter(), []
    with json_stdout() as out, tempfile.TemporaryDirectory() as workdir:
        ctx = Context(args.device, SIZES[args.device], Path(workdir))
        for name in args.checks:
            record = run_check(name, ctx)
            if record["enforced"] and record["ok"] is False:
                failed.append(name)
            out.write(json.dumps(record) + "\n")
        seconds = time.perf_counter() - start
        ok = seconds <= MAX_SECONDS
        if ctx.gpu and not ok:
            failed.append("total")
        total = {"check": "total", "ok": ok, "enforced": ctx.gpu, "device": args.device}
        total |= {"seconds": round(seconds, 1), "target_seconds": MAX_SECONDS, "failed": failed}
        out.write(json.dumps(total) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

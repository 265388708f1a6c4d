"""Peak extra memory of one attention layer call, for every registered masker, at Llama-3.1-8B shapes.

One layer: B=1, H=32, Hkv=8, D=128, K=32,768 (``--k``), bf16 q/k/v, a causal bool mask, at
Q = 1, 32 and 256 (``--q``). Cases: torch SDPA with the math backend and our dense path (empty
masker list), both for reference, and one per registered masker (``available_maskers()``, so a
new masker is covered without a change here): Sink(128) + Local(512) + the masker's configs
from ``bench/method_arms.py`` (``method_configs``: its method arm at 5 %, with the same
artefacts as ``bench/attention_overhead.py``; sink and local alone are the stack sink + local).

A call is measured as a question after its context: the context's last token is attended
first (``K - Q`` keys), so every masker state is built on the context, then the measured call
attends Q queries to all K keys (a stateful masker extends its state by the Q keys). For a
stateful masker, building its state on all K keys is measured separately
(``masker.build_state``).

Measurement (``bench/peak_memory.py``): by default every (case, Q) and every state build runs
in its own fresh subprocess (``--one-process``: all in one subprocess); on the CPU the peak
resident set beyond what the process held before the call, on CUDA (``--device cuda``) the
peak of allocated tensors beyond those held before. Queries are scaled by 4 so the attention
is peaked, as a trained model's is (flat random attention would need most keys for any top-p).

Per masker (issue 24; denominators floored at 1 MiB):

- ``q256_over_q32``: peak at Q=256 over peak at Q=32, target <= 1.25;
- ``over_oracle_top_k``: peak at the largest Q over oracle top-k's there, target <= 1.5;
- ``state_build_over_k``: the state build's peak over the bf16 size of K (Hkv x K x D x 2
  bytes), target <= 1.0 (stateful maskers only).

    .venv/bin/python bench/attention_memory.py [--k 32768] [--q 1 32 256] [--maskers quest ...]
        [--device cpu] [--one-process] [--strict]

The last line printed is one JSON object with the peaks (MiB), the ratios and whether each
target holds. ``--strict`` exits with status 1 when a target is missed or a case failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peak_memory import measuring_env, peak_extra_bytes

REFERENCES = ("sdpa_math", "dense")
H, HKV, D = 32, 8, 128
MIB = 2**20
BUILD = "build"  # the job that measures a state build (in place of a Q)
TARGETS = {"q256_over_q32": 1.25, "over_oracle_top_k": 1.5, "state_build_over_k": 1.0}

log = logging.getLogger("attention_memory")
Job = tuple[str, int | str]
Fn = Callable[..., Any]


def all_cases() -> list[str]:
    """The references, then every registered masker in registration order."""
    from sparse_attention_hub.sparse_attention.maskers import available_maskers

    return [*REFERENCES, *available_maskers()]


def select_cases(names: list[str] | None) -> list[str]:
    """The cases of ``names`` (all when None), oracle top-k always (the ratios' reference).

    Raises:
        ValueError: a name that is neither a reference nor a registered masker.
    """
    known = all_cases()
    if names is None:
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--maskers: unknown {unknown}; allowed: {known}")
    return [c for c in known if c in names or c == "oracle_top_k"]


def is_stateful(case: str) -> bool:
    """Whether the masker of ``case`` keeps state (so its build is measured too)."""
    if case in REFERENCES:
        return False
    from sparse_attention_hub.sparse_attention.maskers import resolve_masker

    return bool(resolve_masker(case).is_stateful)


def attention(case: str, k_len: int, workdir: Path) -> tuple[Fn, Any]:
    """``fn(q, k, v, mask) -> output`` of one case, and its ResearchAttention (None for SDPA)."""
    import torch
    import torch.nn.functional as F
    from method_arms import ArmShape, method_configs

    from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
    from sparse_attention_hub.sparse_attention.maskers import LocalMaskerConfig, SinkMaskerConfig

    if case == "sdpa_math":

        def sdpa(q, k, v, mask):  # type: ignore[no-untyped-def]
            with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

        return sdpa, None
    shape = ArmShape(heads=H, kv_heads=HKV, head_dim=D, keys=k_len, layers=1)
    configs = []
    if case != "dense":
        configs = [SinkMaskerConfig(sink_size=128), LocalMaskerConfig(window_size=512)]
        configs += method_configs(case, shape, workdir)
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig(configs))

    def research(q, k, v, mask):  # type: ignore[no-untyped-def]
        return attn.custom_attention(None, q, k, v, mask, None, 0.0, layer_idx=0)[0]

    return research, attn


def make_inputs(q_len: int, k_len: int, device: str, seed: int = 0) -> tuple[Any, ...]:
    """q (1, H, Q, D) x 4, k and v (1, Hkv, K, D), bf16, and a (1, 1, Q, K) causal bool mask."""
    import torch

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, H, q_len, D, generator=g, dtype=torch.bfloat16) * 4
    k = torch.randn(1, HKV, k_len, D, generator=g, dtype=torch.bfloat16)
    v = torch.randn(1, HKV, k_len, D, generator=g, dtype=torch.bfloat16)
    positions = torch.arange(k_len - q_len, k_len).unsqueeze(-1)  # (Q, 1)
    mask = (torch.arange(k_len) <= positions)[None, None]  # (1, 1, Q, K) bool
    return tuple(t.to(device) for t in (q, k, v, mask))


def measure_call(case: str, q_len: int, k_len: int, device: str, workdir: Path) -> int:
    """Peak extra bytes of one call of Q queries on K keys, the context's states built."""
    import torch

    fn, attn = attention(case, k_len, workdir)
    fn(*make_inputs(2, 256, device, seed=1))  # warm-up on tiny shapes
    if attn is not None:
        attn.new_request()
    q, k, v, mask = make_inputs(q_len, k_len, device)
    context = k_len - q_len
    fn(q[:, :, -1:], k[:, :, :context], v[:, :, :context], None)  # builds the context's states
    peak, _ = peak_extra_bytes(lambda: fn(q, k, v, mask), torch.device(device))
    return peak


def measure_build(case: str, k_len: int, device: str, workdir: Path) -> int | None:
    """Peak extra bytes of building the state of the case's masker on all K keys (None for
    a stateless one); the state built is held until the peak is read."""
    import torch

    from sparse_attention_hub.sparse_attention.inputs import AttentionInputs

    _, attn = attention(case, k_len, workdir)
    maskers = [] if attn is None else attn.maskers
    stateful = [m for m in maskers if m.is_stateful and type(m).name == case]
    if not stateful:
        return None

    def build(q_len: int, keys: int, seed: int) -> Callable[[], list[Any]]:
        q, k, v, _ = make_inputs(q_len, keys, device, seed)
        inputs = AttentionInputs(q, k, v, None, layer_idx=0)
        return lambda: [m.build_state(inputs) for m in stateful]

    build(1, 256, 1)()  # warm-up on tiny shapes
    peak, _ = peak_extra_bytes(build(1, k_len, 0), torch.device(device))
    return peak


def child(jobs: list[Job], k_len: int, device: str) -> None:
    """Run ``jobs`` in this process; print one JSON line per job (its peak or its error)."""
    import torch

    if device == "cpu":
        torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as workdir, torch.inference_mode():
        for case, job in jobs:
            record: dict[str, Any] = {"case": case, "job": job}
            try:
                if job == BUILD:
                    record["peak_bytes"] = measure_build(case, k_len, device, Path(workdir))
                else:
                    record["peak_bytes"] = measure_call(
                        case, int(job), k_len, device, Path(workdir)
                    )
            except Exception as exc:  # one case failing (e.g. out of memory) spares the others
                record["error"] = f"{type(exc).__name__}: {exc}"[:400]
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
            print(json.dumps(record), flush=True)


def _text(out: str | bytes | None) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else (out or "")


def run_jobs(jobs: list[Job], k_len: int, device: str, timeout: float) -> list[dict[str, Any]]:
    """The records of ``jobs`` run in one fresh subprocess; a job without a result (the
    process died or timed out) gets an ``error``."""
    cmd = [sys.executable, __file__, "--child", json.dumps(jobs), "--k", str(k_len)]
    cmd += ["--device", device]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=measuring_env()
        )
        stdout, failure = proc.stdout, f"the process exited with status {proc.returncode}"
        if proc.returncode:
            failure += ": " + _text(proc.stderr).strip()[-300:]
    except subprocess.TimeoutExpired as exc:
        stdout, failure = _text(exc.stdout), f"the process ran past {timeout:.0f} s"
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    done = {(r["case"], r["job"]) for r in records}
    records += [{"case": c, "job": j, "error": failure} for c, j in jobs if (c, j) not in done]
    return records


def measure_all(
    cases: list[str], qs: list[int], k_len: int, device: str, one_process: bool, timeout: float
) -> list[dict[str, Any]]:
    """Every (case, Q) call and every stateful case's build: one subprocess each, or (with
    ``one_process``) all in one subprocess of ``timeout`` seconds."""
    jobs: list[Job] = [(c, q) for c in cases for q in qs]
    jobs += [(c, BUILD) for c in cases if is_stateful(c)]
    if one_process:
        return run_jobs(jobs, k_len, device, timeout)
    records = []
    for job in jobs:
        records += run_jobs([job], k_len, device, timeout)
        log.info("K=%d %s", k_len, json.dumps(records[-1]))
    return records


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None:
        return None
    return round(top / max(bottom, 1.0), 3)


def masker_row(
    case: str, peaks: dict[str, dict[str, float | None]], build: float | None, k_len: int
) -> dict[str, Any]:
    """The ratios of one masker, each target met (True/False) or not applicable (None)."""
    row = peaks[case]
    qmax = max(row, key=int)
    ratios: dict[str, float | None] = {
        "q256_over_q32": _ratio(row.get("256"), row.get("32")),
        "over_oracle_top_k": _ratio(row[qmax], peaks["oracle_top_k"].get(qmax)),
        "state_build_over_k": _ratio(build, HKV * k_len * D * 2 / MIB),
    }
    applies = {
        "q256_over_q32": "256" in row and "32" in row,
        "over_oracle_top_k": True,
        "state_build_over_k": is_stateful(case),
    }
    met = {
        name: (value is not None and value <= TARGETS[name]) if applies[name] else None
        for name, value in ratios.items()
    }
    return {**ratios, "met": met, "ok": all(v is not False for v in met.values())}


def summarise(
    records: list[dict[str, Any]], cases: list[str], qs: list[int], k_len: int
) -> dict[str, Any]:
    """The JSON summary: peaks and builds in MiB, per-masker ratios and targets, errors."""
    peaks: dict[str, dict[str, float | None]] = {c: {str(q): None for q in qs} for c in cases}
    builds: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for r in records:
        mib = None if r.get("peak_bytes") is None else round(r["peak_bytes"] / MIB, 1)
        if r["job"] == BUILD:
            builds[r["case"]] = mib
        else:
            peaks[r["case"]][str(r["job"])] = mib
        if "error" in r:
            errors[f"{r['case']}@{r['job']}"] = r["error"]
    maskers = {c: masker_row(c, peaks, builds.get(c), k_len) for c in cases if c not in REFERENCES}
    return {
        "bench": "attention_memory",
        "shape": {"B": 1, "H": H, "Hkv": HKV, "D": D, "K": k_len, "dtype": "bfloat16"},
        "q": qs,
        "peak_mib": peaks,
        "state_build_mib": builds,
        "k_bf16_mib": HKV * k_len * D * 2 / MIB,
        "maskers": maskers,
        "targets": TARGETS,
        "errors": errors,
        "all_met": not errors and all(row["ok"] for row in maskers.values()),
    }


def print_table(result: dict[str, Any]) -> None:
    """The human-readable table of a summary."""
    qs, k_len = result["q"], result["shape"]["K"]
    print(f"peak extra memory (MiB), bf16, H={H}, Hkv={HKV}, D={D}, K={k_len}")
    head = " ".join(f"{'Q=' + str(q):>8}" for q in qs)
    print(f"{'case':>16} {head} {'Q256/Q32':>9} {'/top-k':>7} {'build':>7} {'build/K':>8}")
    for case, row in result["peak_mib"].items():
        cells = " ".join(f"{'-' if row[str(q)] is None else row[str(q)]:>8}" for q in qs)
        ratios = result["maskers"].get(case, {})
        build = result["state_build_mib"].get(case)
        extra = [ratios.get("q256_over_q32"), ratios.get("over_oracle_top_k"), build]
        extra.append(ratios.get("state_build_over_k"))
        print(f"{case:>16} {cells} " + " ".join(f"{'-' if x is None else x:>8}" for x in extra))
    for job, error in result["errors"].items():
        print(f"failed {job}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=32768)
    parser.add_argument("--q", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--maskers", nargs="+", help="registered maskers (or sdpa_math, dense)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one-process", action="store_true", help="all cases in one process")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a missed target")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per subprocess")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child([tuple(job) for job in json.loads(args.child)], args.k, args.device)
        return
    if min(args.q) < 1 or args.k <= max(args.q):
        parser.error(f"--q {args.q} must be >= 1 and below --k {args.k}")
    try:
        cases = select_cases(args.maskers)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    records = measure_all(cases, args.q, args.k, args.device, args.one_process, args.timeout)
    result = summarise(records, cases, args.q, args.k)
    print_table(result)
    print(json.dumps(result))
    if args.strict and not result["all_met"]:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""LongBench-v2's answer extraction and accuracy buckets (THUDM/LongBench ``pred.py``, ``result.py``).

Official semantics kept:

- ``extract_answer``: ``*`` removed, then the case-sensitive ``The correct answer is \\(([A-D])\\)``,
  else ``The correct answer is ([A-D])``; anything else is no answer (wrong).
- pred.py skips an empty output (``output == ''``): the row is written nowhere, so it is
  outside every bucket and every denominator. Here such rows are counted in ``num_empty``.
- result.py: "easy" vs everything else ("hard"); "short", "medium", everything else ("long");
  accuracy ``round(100 * correct / n, 1)``. Where result.py divides by zero (an empty bucket)
  the value is None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

_PAREN = re.compile(r"The correct answer is \(([A-D])\)")
_BARE = re.compile(r"The correct answer is ([A-D])")
BUCKETS: tuple[str, ...] = ("overall", "easy", "hard", "short", "medium", "long")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def extract_answer(response: str) -> str | None:
    """The letter of "The correct answer is (X)" (or without parentheses), else None."""
    response = response.replace("*", "")
    match = _PAREN.search(response) or _BARE.search(response)
    return match.group(1) if match else None


def is_empty(prediction: Any) -> bool:
    """pred.py drops a row whose raw output is exactly '' (missing predictions too)."""
    return _text(prediction) == ""


def judge(prediction: Any, answer: Any) -> bool:
    """pred.py's ``judge``: the extracted letter (of the stripped output) equals the answer."""
    return extract_answer(_text(prediction).strip()) == _text(answer)


def _accuracy(flags: list[bool]) -> float | None:
    return round(100 * sum(flags) / len(flags), 1) if flags else None


def bucket_accuracy(
    judged: Iterable[tuple[bool, str, str]],
) -> dict[str, float | None]:
    """result.py's accuracies from (correct, difficulty, length) of the non-empty rows."""
    groups: dict[str, list[bool]] = {name: [] for name in BUCKETS}
    for correct, difficulty, length in judged:
        groups["overall"].append(correct)
        groups["easy" if difficulty == "easy" else "hard"].append(correct)
        groups[length if length in ("short", "medium") else "long"].append(correct)
    return {name: _accuracy(flags) for name, flags in groups.items()}


def score_subset(frame: pd.DataFrame) -> dict[str, Any]:
    """Accuracy buckets of one subset's rows, plus the row counts (scored and empty)."""
    empty = [is_empty(p) for p in frame["predicted_answer"]]
    kept = frame.loc[[not e for e in empty]]
    judged = [
        (judge(p, a), _text(d), _text(n))
        for p, a, d, n in zip(
            kept["predicted_answer"],
            kept["answer"],
            kept["difficulty"],
            kept["length"],
            strict=True,
        )
    ]
    return {**bucket_accuracy(judged), "num_scored": len(judged), "num_empty": sum(empty)}

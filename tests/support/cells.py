"""Hand-made cell folders for results-table and report tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_complete(
    cell: Path, metrics: dict[str, Any], answers: list[str] | None = None, first_row: int = 0
) -> None:
    """The files that make ``cell`` (config.json already there) complete: a predictions log
    (``answers``, or one empty answer, numbered from ``first_row``), raw_results.csv, and
    metrics.json with the row count and config.json's fingerprint."""
    answers = [""] if answers is None else answers
    lines = [
        json.dumps({"row_id": row, "request_index": row, "predicted_answer": answer})
        for row, answer in enumerate(answers, start=first_row)
    ]
    (cell / "predictions.jsonl").write_text("".join(line + "\n" for line in lines))
    (cell / "raw_results.csv").write_text("row_id\n" + "".join(f"{i}\n" for i in range(len(lines))))
    fingerprint = json.loads((cell / "config.json").read_text()).get("fingerprint")
    stamped = {"num_rows": len(lines), "fingerprint": fingerprint, **metrics}
    (cell / "metrics.json").write_text(json.dumps(stamped))

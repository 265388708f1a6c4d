"""``sah report``'s output paths checked before any work, and the reports of several runs
joined into one output."""

from __future__ import annotations

import csv
import io
import json

from sparse_attention_hub.cli.output_paths import check_output_file, check_output_folder

RESULTS_DIR_KEY = "results_dir"


def check_output_paths(html: str | None, out: str | None) -> None:
    """ValueError (one line, naming the path as given) when ``--html`` is a directory or
    ``--out`` a file, when a file stands where a folder above either would be made, or when
    either cannot be written (see ``cli.output_paths``)."""
    if html is not None:
        check_output_file("--html", html, "report.html")
    if out is not None:
        check_output_folder("--out", out)


def join_reports(parts: list[tuple[str, str]], fmt: str) -> str:
    """The reports ``[(results dir, text)]`` of several runs as one output: each table headed
    by its results directory (``table``, ``markdown``), or one document whose rows start with
    a ``results_dir`` column (``json``, ``csv``). Rows of different runs are never merged."""
    if fmt in ("json", "csv"):
        rows: list[dict[str, object]] = []
        for run, text in parts:
            records = json.loads(text) if fmt == "json" else _csv_records(text)
            rows += [{RESULTS_DIR_KEY: run, **record} for record in records]
        return json.dumps(rows, indent=2) if fmt == "json" else _csv_text(rows)
    heading = "### {}\n\n{}" if fmt == "markdown" else "{}:\n{}"
    return "\n\n".join(heading.format(run, text) for run, text in parts)


def _csv_records(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text))) if text.strip() else []


def _csv_text(rows: list[dict[str, object]]) -> str:
    """One CSV over ``rows``: the union of their columns, in order of first appearance."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return handle.getvalue().rstrip("\n")

"""The cell store's writes: atomic, mode 0644 under the umask, nothing left behind on failure;
the predictions log's tolerance of damage."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sparse_attention_hub import cell_store
from sparse_attention_hub.cell_store.atomic import write_atomic


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o644)])
def test_json_files_get_0644_minus_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        cell_store.write_json_atomic(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == mode
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    cell_store.write_json_atomic(target, {"old": True})

    def fail(handle: object) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomic(target, fail)
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_predictions_log_drops_damage_and_cuts_it_on_resume(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    cell_store.append_predictions(log, [{"row_id": 0, "p": "a"}, {"row_id": 1, "p": "b"}])
    with open(log, "a") as handle:
        handle.write('{"no_row_id": 1}\n{"row_id": 2, "p": "torn')
    scan = cell_store.scan_predictions(log)
    assert [r["row_id"] for r in scan.records] == [0, 1] and scan.bad_lines == [3, 4]
    assert not scan.intact
    assert [r["row_id"] for r in cell_store.read_predictions(log, repair=False)] == [0, 1]
    assert "torn" in log.read_text()  # repair=False reads only
    cell_store.read_predictions(log)
    assert cell_store.scan_predictions(log).intact and len(log.read_text().splitlines()) == 2


def test_metric_log_keeps_only_saved_requests(tmp_path: Path) -> None:
    events = [{"metric": "m", "value": i, "metadata": {"request_index": i}} for i in range(3)]
    text = "".join(json.dumps(e) + "\n" for e in events) + '{"metric": "m", "val'
    (tmp_path / "micro_metrics.jsonl").write_text(text)
    assert cell_store.keep_requests(tmp_path, {0, 1}) == 2  # request 2's event, the torn line
    kept = [
        json.loads(line) for line in (tmp_path / "micro_metrics.jsonl").read_text().splitlines()
    ]
    assert [e["value"] for e in kept] == [0, 1]


def test_a_damaged_micro_metrics_line_is_found(tmp_path: Path) -> None:
    lines = [json.dumps({"metric": "m", "value": i}).encode() for i in range(3)]
    (tmp_path / "micro_metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert cell_store.metric_log_problem(tmp_path) is None
    lines[1] = lines[1][:-2] + b"\xc3}"  # a cut UTF-8 character
    (tmp_path / "micro_metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert "damaged line(s) 2" in str(cell_store.metric_log_problem(tmp_path))
    (tmp_path / "micro_metrics.jsonl").write_bytes(b"\n".join([*lines[:1], b"garbage"]))
    assert "damaged line(s) 2 (a torn last line)" in str(cell_store.metric_log_problem(tmp_path))


def test_a_row_recorded_twice_keeps_its_last_record_on_resume(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    cell_store.append_predictions(log, [{"row_id": 0, "p": "a"}, {"row_id": 1, "p": "b"}])
    cell_store.append_predictions(log, [{"row_id": 0, "p": "c"}])
    assert not cell_store.scan_predictions(log).intact
    assert [r["p"] for r in cell_store.read_predictions(log)] == ["b", "c"]
    scan = cell_store.scan_predictions(log)
    assert scan.intact and [r["p"] for r in scan.records] == ["b", "c"]

"""LongBench and RULER loaders on small local files in the hub datasets' own schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.longbench.tasks import dataset2prompt
from sparse_attention_hub.benchmarks.ruler import ruler_metric
from sparse_attention_hub.benchmarks.scoring import (
    ruler_postprocess,
    string_match_all,
    string_match_part,
)

from .helpers import EchoAdapter


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    return path


def _longbench_row(
    i: int, context: str, question: str, answers: list[str], length: int, **extra: Any
) -> dict[str, Any]:
    row = {
        "input": question,
        "context": context,
        "answers": answers,
        "length": length,
        "dataset": "x",
        "language": "en",
        "all_classes": None,
        "_id": f"id{i}",
    }
    row.update(extra)
    return row


@pytest.fixture()
def longbench_dir(tmp_path: Path) -> Path:
    _write_jsonl(
        tmp_path / "hotpotqa.jsonl",
        [
            _longbench_row(0, "Passage 1: Paris is in France.", "Where is Paris?", ["France"], 7),
            _longbench_row(
                1, "Passage 2: Rome is in Italy.", "Where is Rome?", ["Italy", "Lazio"], 7
            ),
        ],
    )
    _write_jsonl(
        tmp_path / "qasper_e.jsonl",
        [
            _longbench_row(0, "short article", "q0?", ["yes"], 1000),
            _longbench_row(1, "mid article", "q1?", ["no"], 5000),
            _longbench_row(2, "long article", "q2?", ["unanswerable"], 9000),
            _longbench_row(3, "short again", "q3?", ["yes"], 3999),
        ],
    )
    _write_jsonl(
        tmp_path / "trec.jsonl",
        [
            _longbench_row(
                0,
                "Question: Who? Type: Human",
                "Question: How many?\nType:",
                ["Numeric"],
                30,
                all_classes=["Human", "Numeric"],
            ),
        ],
    )
    return tmp_path


def test_longbench_loader_builds_the_official_prompt(longbench_dir: Path) -> None:
    bench = create_benchmark_instance("longbench", ["hotpotqa", "trec"], data_dir=longbench_dir)
    rows = bench.load_datasets()
    assert list(rows["task"]) == ["hotpotqa", "hotpotqa", "trec"]
    first = rows.iloc[0]
    official = dataset2prompt()["hotpotqa"].format(
        context="Passage 1: Paris is in France.", input="Where is Paris?"
    )
    assert first["context"] + first["question"] == official
    assert first["context"].endswith("Passage 1: Paris is in France.")
    assert first["question"].endswith("Question: Where is Paris?\nAnswer:")
    assert list(rows["max_new_tokens"]) == [32, 32, 64]
    assert rows.iloc[1]["answers"] == ["Italy", "Lazio"]
    assert rows.iloc[2]["all_classes"] == ["Human", "Numeric"]
    assert bench.describe()["local_source"] == str(longbench_dir.resolve())


def test_longbench_run_scores_tasks_and_e_buckets(longbench_dir: Path, tmp_path: Path) -> None:
    bench = create_benchmark_instance(
        "longbench", ["hotpotqa", "qasper_e", "trec"], data_dir=longbench_dir
    )
    rows = bench.load_datasets()
    by_question = dict(zip(rows["question"], rows["task"], strict=True))
    answers = {}
    for question, task in by_question.items():
        if task == "hotpotqa":
            answers[question] = "France" if "Paris" in question else "Lazio, Italy"
        elif task == "trec":
            answers[question] = "Numeric\nHuman"  # only the first line counts
        else:
            answers[question] = "yes" if "q0" in question or "q1" in question else "no"
    metrics = bench.run_benchmark(
        EchoAdapter(answers=answers), tmp_path / "cell", show_progress=False
    )
    # hotpotqa: 1.0 and F1("Lazio, Italy", "Italy") = 2/3 (max over golds) -> 83.33
    # qasper_e (gold, prediction): (yes, yes) 1, (no, yes) 0, (unanswerable, no) 0, (yes, no) 0
    # buckets by length: 1000 and 3999 -> 0-4k, 5000 -> 4-8k, 9000 -> 8k+
    assert metrics["task_scores"] == {"hotpotqa": 83.33, "qasper_e": 25.0, "trec": 100.0}
    assert metrics["length_bucket_scores"] == {"qasper_e": {"0-4k": 50.0, "4-8k": 0.0, "8k+": 0.0}}
    assert metrics["overall_score"] == round((83.33 + 25.0 + 100.0) / 3, 2)


def test_longbench_missing_column_names_column_and_file(longbench_dir: Path) -> None:
    _write_jsonl(longbench_dir / "lsht.jsonl", [{"input": "q", "context": "c", "answers": ["a"]}])
    bench = create_benchmark_instance("longbench", ["lsht"], data_dir=longbench_dir)
    with pytest.raises(
        ValueError, match=r"lsht\.jsonl is missing required column\(s\) 'all_classes'"
    ):
        bench.load_datasets()
    with pytest.raises(FileNotFoundError, match="musique"):
        create_benchmark_instance("longbench", ["musique"], data_dir=longbench_dir).load_datasets()


def _ruler_rows() -> list[dict[str, Any]]:
    shared = "Some haystack. The special magic number for red-apple is: 123. More haystack."
    return [
        {
            "context": shared,
            "question": "What is the number for red-apple?",
            "answer_prefix": " The number is",
            "answer": ["123"],
            "task": "niah_single_1",
            "max_new_tokens": 128,
        },
        {
            "context": shared,
            "question": "List the numbers.",
            "answer_prefix": " The number is",
            "answer": ["123", "456"],
            "task": "niah_multivalue",
            "max_new_tokens": 128,
        },
        {
            "context": "Doc 1: Rome.",
            "question": "Capital of Italy?",
            "answer_prefix": " Answer:",
            "answer": ["Rome", "Roma"],
            "task": "qa_1",
            "max_new_tokens": 32,
        },
    ]


def test_ruler_local_loader_and_scoring(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "data" / "4096" / "test.jsonl", _ruler_rows())
    bench = create_benchmark_instance("ruler", ["4096"], data_dir=tmp_path / "data")
    rows = bench.load_datasets()
    assert list(rows["task"]) == ["niah_single_1", "niah_multivalue", "qa_1"]
    answers = {
        "What is the number for red-apple?": " 123\x00",
        "List the numbers.": "456 and 789",
        "Capital of Italy?": "roma, of course",
    }
    adapter = EchoAdapter(answers=answers)
    metrics = bench.run_benchmark(adapter, tmp_path / "cell", show_progress=False)
    assert len(adapter.calls) == 2  # the two niah rows share their context
    assert metrics["task_scores"] == {
        "niah_multivalue": 50.0,
        "niah_single_1": 100.0,
        "qa_1": 100.0,
    }
    assert metrics["overall_score"] == round(250 / 3, 2)


def test_ruler_missing_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "answer_prefix"} for row in _ruler_rows()]
    path = _write_jsonl(tmp_path / "8192.jsonl", rows)
    bench = create_benchmark_instance("ruler", ["8192"], data_dir=tmp_path)
    with pytest.raises(
        ValueError, match=rf"{path.name} is missing required column\(s\) 'answer_prefix'"
    ):
        bench.load_datasets()


def test_ruler_string_matching() -> None:
    assert string_match_all(["a B", ""], [["b", "c"], ["x"]]) == 25.0
    assert string_match_part(["a B", ""], [["b", "c"], ["x"]]) == 50.0
    assert string_match_part(["答案是北京"], [["北京", "上海"]]) == 100.0
    assert string_match_all(["答案是北京"], [["北京", "上海"]]) == 50.0
    assert string_match_all(["1/3"], [["1", "3", "9"]]) == 66.67
    assert ruler_postprocess("  abc\x00def \n") == "abc\ndef"
    assert ruler_postprocess(None) == ""
    assert ruler_metric("qa_2") is string_match_part and ruler_metric("cwe") is string_match_all


def test_hub_path_offline_fails_with_a_pointer_to_data_dir() -> None:
    # conftest sets HF_HUB_OFFLINE / HF_DATASETS_OFFLINE: the real path fails fast, no download
    with pytest.raises(RuntimeError, match=r"simonjegou/ruler.*data_dir="):
        create_benchmark_instance("ruler", ["4096"]).load_datasets()
    with pytest.raises(RuntimeError, match=r"THUDM/LongBench/data\.zip.*data_dir="):
        create_benchmark_instance("longbench", ["qasper_e"]).load_datasets()


def test_longbench_few_shot_tasks_run_without_chat_template(
    longbench_dir: Path, tmp_path: Path
) -> None:
    bench = create_benchmark_instance("longbench", ["hotpotqa", "trec"], data_dir=longbench_dir)
    adapter = EchoAdapter()
    request_kwargs = {"apply_chat_template": True, "truncation": "middle"}
    bench.run_benchmark(adapter, tmp_path, request_kwargs=request_kwargs, show_progress=False)
    templates = [c["request_kwargs"]["apply_chat_template"] for c in adapter.calls]
    assert templates == [True, True, False]  # hotpotqa x2 as asked, trec never
    assert request_kwargs == {"apply_chat_template": True, "truncation": "middle"}


def test_longbench_hub_path_reads_the_official_data_zip(
    longbench_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The archive in THUDM/LongBench's layout (data/<task>.jsonl); only the download itself is
    # replaced, since the hub is unreachable here.
    import zipfile

    from sparse_attention_hub.benchmarks.longbench import benchmark as longbench_module

    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("hotpotqa", "qasper_e"):
            zf.write(longbench_dir / f"{name}.jsonl", f"data/{name}.jsonl")
    asked: list[tuple[str, str, str | None]] = []

    def fake_download(dataset_id: str, filename: str, revision: str | None = None) -> Path:
        asked.append((dataset_id, filename, revision))
        return archive

    monkeypatch.setattr(longbench_module, "download_hub_file", fake_download)
    bench = create_benchmark_instance("longbench", ["hotpotqa", "qasper_e"], revision="abc")
    rows = bench.load_datasets()
    assert list(rows["task"]) == ["hotpotqa"] * 2 + ["qasper_e"] * 4
    assert rows.iloc[1]["answers"] == ["Italy", "Lazio"]
    assert asked == [("THUDM/LongBench", "data.zip", "abc")] * 2
    with pytest.raises(FileNotFoundError, match=r"data\.zip has no member 'data/trec\.jsonl'"):
        create_benchmark_instance("longbench", ["trec"]).load_datasets()


def test_ruler_csv_answer_lists_are_read_as_lists(tmp_path: Path) -> None:
    # CSV has no lists: a JSON list cell (as raw_results.csv writes them) is the gold list,
    # a plain string one gold; before, '["123", "456"]' was one gold that nothing matched
    rows = pd.DataFrame(_ruler_rows())
    rows["answer"] = [json.dumps(a) for a in rows["answer"]]
    rows.loc[2, "answer"] = "Rome"
    rows.to_csv(tmp_path / "4096.csv", index=False)
    bench = create_benchmark_instance("ruler", ["4096"], data_dir=tmp_path)
    assert bench.load_datasets()["answer"].tolist() == [["123"], ["123", "456"], "Rome"]
    answers = {
        "What is the number for red-apple?": "123",
        "List the numbers.": "123 and 456",
        "Capital of Italy?": "rome",
    }
    metrics = bench.run_benchmark(EchoAdapter(answers=answers), tmp_path / "c", show_progress=False)
    assert metrics["overall_score"] == 100.0

"""zero_scrolls: prompts from the data, official metrics on validation, submission on test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.zero_scrolls import (
    accuracy_score,
    concordance_index_score,
    exp_similarity_score,
    f1_score,
    rouge_scores,
    score_task,
)

from .helpers import EchoAdapter


def _example(task: str, i: str, document: str, query: str, output: str | None) -> dict[str, Any]:
    # tau/zero_scrolls's schema: the whole zero-shot prompt is in "input"
    head = f"You are given a text. Answer the query.\n\nText:\n{document}"
    tail = f"\n\nQuery:\n{query}\n\nAnswer:\n"
    return {
        "id": i,
        "pid": f"{i}_0",
        "input": head + tail,
        "output": output,
        "document_start_index": head.index(document),
        "document_end_index": len(head),
        "query_start_index": len(head) + 9,
        "query_end_index": len(head) + 9 + len(query),
        "truncation_seperator": "... [The rest of the text is omitted]\n\n",
    }


def _write(root: Path, task: str, split: str, rows: list[dict[str, Any]]) -> None:
    folder = root / task  # the official zip's layout: <task>/<split>.jsonl
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "zs"
    qa = [
        _example("narrative_qa", "n1", "Tom met Ann in Rome.", "Where?", "in Rome"),
        _example("narrative_qa", "n1", "Tom met Ann in Rome.", "Where?", "Italy"),  # 2nd ref
        _example("narrative_qa", "n2", "Ann left.", "Who left?", "Ann"),
    ]
    _write(root, "narrative_qa", "validation", qa)
    _write(root, "quality", "validation", [_example("quality", "q1", "Story.", "Pick.", "(C) x")])
    _write(root, "book_sum_sort", "test", [_example("book_sum_sort", "b1", "S.", "Order?", None)])
    _write(root, "space_digest", "test", [_example("space_digest", "s1", "R.", "Pct?", None)])
    return root


def test_loader_groups_references_and_cuts_after_the_document(data_dir: Path) -> None:
    bench = create_benchmark_instance("zero_scrolls", ["narrative_qa"], data_dir=data_dir)
    rows = bench.load_datasets()
    assert list(rows["id"]) == ["n1", "n2"]
    assert rows.iloc[0]["outputs"] == ["in Rome", "Italy"]
    first = rows.iloc[0]
    assert first["context"].endswith("Text:\nTom met Ann in Rome.")
    assert first["question"] == "\n\nQuery:\nWhere?\n\nAnswer:\n"
    assert first["max_new_tokens"] == 64
    with pytest.raises(ValueError, match="split must be one of validation, test"):
        create_benchmark_instance("zero_scrolls", split="train")


def test_official_metrics_per_row() -> None:
    assert f1_score("The Rome!", "in Rome") == pytest.approx(2 / 3)
    assert accuracy_score("Answer: (C)", "(C) x") == 1.0
    assert accuracy_score("A guess: C", "(C) x") == 0.0  # the first standalone letter is "A"
    assert exp_similarity_score("about 60%", "70%") == pytest.approx(0.5)
    assert exp_similarity_score("60", "70%") == 0.0  # no percent sign: no percentage
    assert concordance_index_score("1, 2, 3", "1, 2, 3") == 1.0
    assert concordance_index_score("2, 1, 3", "1, 2, 3") == pytest.approx(2 / 3)
    assert concordance_index_score("3, 2, 1", "1, 2, 3") == 0.0
    assert concordance_index_score("1, 2", "1, 2, 3") == 0.0  # not a permutation
    scores = rouge_scores("the cat sat", "The cat sat on the mat", with_lsum=False)
    assert scores["rouge1"] == pytest.approx(2 * 0.5 / 1.5)  # lower-cased tokens, F-measure
    assert set(scores) == {"rouge1", "rouge2", "rougeL"}


@pytest.mark.parametrize(
    ("task", "gold"), [("space_digest", "seventy percent"), ("quality", "none of them")]
)
def test_malformed_gold_is_refused_naming_the_row(task: str, gold: str) -> None:
    # SpaceDigest's gold without "%" was read as 0%; now both tasks refuse alike
    frame = pd.DataFrame(
        {
            "id": ["ok", "bad"],
            "predicted_answer": ["70% (A)", "0% (A)"],
            "outputs": [["70% A"], [gold]],
        }
    )
    with pytest.raises(ValueError, match=f"zero_scrolls {task} id 'bad': .*gold '{gold}'"):
        score_task(task, frame)


def test_rouge_geometric_mean_of_best_reference() -> None:
    frame = pd.DataFrame(
        {
            "predicted_answer": ["the cat sat on the mat", "a dog"],
            "outputs": [["a bird flew", "the cat sat on the mat"], ["a dog barked loudly"]],
        }
    )
    result = score_task("gov_report", frame)
    metrics = result["metrics"]
    # row 1 matches its 2nd reference exactly; row 2: rouge1 F = 2*(1*0.5)/1.5 = 2/3 ...
    r1, r2, rl = (
        (100 + 200 / 3) / 2,
        (100 + 2 * (1 * 1 / 3) / (4 / 3) * 100) / 2,
        (100 + 200 / 3) / 2,
    )
    assert metrics["rouge/rouge1"] == round(r1, 2)
    assert metrics["rouge/rouge2"] == round(r2, 2)
    assert metrics["rouge/rougeL"] == round(rl, 2)
    assert result["score"] == round((r1 * r2 * rl) ** (1 / 3), 2)
    if "rouge/rougeLsum" not in metrics:  # no punkt data offline: said so, others computed
        assert "punkt" in result["unavailable"]["rouge/rougeLsum"]


def test_validation_run_scores(data_dir: Path, tmp_path: Path) -> None:
    bench = create_benchmark_instance(
        "zero_scrolls", ["narrative_qa", "quality"], data_dir=data_dir
    )
    rows = bench.load_datasets()
    replies = ["Italy", "Ann", "C"]
    adapter = EchoAdapter(answers=dict(zip(rows["question"], replies, strict=True)))
    metrics = bench.run_benchmark(adapter, tmp_path / "v", show_progress=False)
    assert metrics["task_scores"] == {"narrative_qa": 100.0, "quality": 100.0}
    assert metrics["split"] == "validation"


def test_test_split_writes_the_submission(data_dir: Path, tmp_path: Path) -> None:
    bench = create_benchmark_instance(
        "zero_scrolls", ["book_sum_sort", "space_digest"], data_dir=data_dir, split="test"
    )
    rows = bench.load_datasets()
    adapter = EchoAdapter(answers=dict(zip(rows["question"], ["2, 1", "40%"], strict=True)))
    metrics = bench.run_benchmark(adapter, tmp_path / "t", show_progress=False)
    assert metrics["overall_score"] is None and "no labels" in metrics["note"]
    assert metrics["submission"] == {"book_sum_sort": {"b1": "2, 1"}, "space_digest": {"s1": "40%"}}
    saved = json.loads((tmp_path / "t" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["submission"] == metrics["submission"]
    csv = pd.read_csv(tmp_path / "t" / "zero_scrolls_predictions.csv", dtype=str)
    assert list(csv.columns) == ["Task", "ID", "Prediction"]
    assert csv.values.tolist() == [["book_sum_sort", "b1", "2, 1"], ["space_digest", "s1", "40%"]]


def test_hub_path_reads_the_task_zip(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tau/zero_scrolls's <task>.zip holds <task>/<split>.jsonl; only the download is replaced
    import zipfile

    from sparse_attention_hub.benchmarks.zero_scrolls import benchmark as zs_module

    archive = tmp_path / "quality.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(data_dir / "quality" / "validation.jsonl", "quality/validation.jsonl")
    asked: list[tuple[str, str, str | None]] = []

    def fake_download(dataset_id: str, filename: str, revision: str | None = None) -> Path:
        asked.append((dataset_id, filename, revision))
        return archive

    monkeypatch.setattr(zs_module, "download_hub_file", fake_download)
    rows = create_benchmark_instance("zero_scrolls", ["quality"], revision="r1").load_datasets()
    assert list(rows["id"]) == ["q1"] and asked == [("tau/zero_scrolls", "quality.zip", "r1")]
    with pytest.raises(FileNotFoundError, match=r"no member 'quality/test\.jsonl'"):
        create_benchmark_instance("zero_scrolls", ["quality"], split="test").load_datasets()


def test_offline_hub_points_to_data_dir() -> None:
    with pytest.raises(RuntimeError, match=r"tau/zero_scrolls/qasper\.zip.*data_dir="):
        create_benchmark_instance("zero_scrolls", ["qasper"]).load_datasets()

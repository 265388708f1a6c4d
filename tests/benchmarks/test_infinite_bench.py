"""infinite_bench: official prompts and compute_scores semantics, on local files in the hub schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.infinite_bench import choice_labels, label_list, score_row

from .helpers import EchoAdapter


def _write(folder: Path, task: str, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (folder / f"{task}.jsonl").write_text(text, encoding="utf-8")


def _row(i: int, context: str, text: str, answer: list[str], options: list[str] | None = None):
    # the hub schema: id, context, input, answer (list of str), options (list of str)
    return {"id": i, "context": context, "input": text, "answer": answer, "options": options or []}


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ib"
    noise = "The grass is green. The sky is blue. " * 3
    _write(
        folder,
        "passkey",
        [_row(0, noise + "The pass key is 71432. " + noise, "What is the pass key?", ["71432"])],
    )
    _write(
        folder, "kv_retrieval", [_row(0, '{"a1": "5e6b-71"}', 'Key: "a1"\nThe value:', ["5e6b-71"])]
    )
    _write(
        folder,
        "code_run",
        [
            _row(
                0,
                "def func_1(x):\n    return x + 3",
                "Please give me the exact value of func_1(-2)",
                ["1"],
            )
        ],
    )
    _write(
        folder, "math_find", [_row(0, "[3, 88, 5]", "The largest number of the list is:", ["88"])]
    )
    options = ["Walking Georgie", "Snowfield", "Ice", "Fire"]
    _write(
        folder,
        "longbook_choice_eng",
        [_row(0, "A book.", "Who walks?", ["Walking Georgie"], options)],
    )
    _write(folder, "math_calc", [_row(0, "1 + 2 - 1", "", ["1", "3", "2"])])
    return folder


def test_loader_builds_the_official_open_model_prompts(data_dir: Path) -> None:
    bench = create_benchmark_instance(
        "infinite_bench",
        ["passkey", "code_run", "math_find", "longbook_choice_eng"],
        data_dir=data_dir,
    )
    rows = bench.load_datasets().set_index("task")
    passkey = rows.loc["passkey"]
    assert passkey["context"].startswith(
        "There is an important info hidden inside a lot of irrelevant text. Find it and "
        "memorize it. I will quiz you about the important information.\n\nThe grass"
    )
    assert passkey["question"] == "\n\nWhat is the pass key?\n\nThe pass key is"
    assert passkey["max_new_tokens"] == 6
    code = rows.loc["code_run"]
    assert code["context"].startswith("There is a function called func_1 in the following")
    assert code["question"] == (
        "\n\nPlease compute the exact value of func_1(-2). The value of func_1(-2) is"
    )
    find = rows.loc["math_find"]
    assert find["context"] == "What is the largest number in the following list?\n\n[3, 88, 5]"
    assert find["max_new_tokens"] == 3
    choice = rows.loc["longbook_choice_eng"]
    assert choice["question"] == (
        "\n\nQuestion: Who walks?\nA. Walking Georgie\nB. Snowfield\nC. Ice\nD. Fire\n\n"
        "The letter of the correct answer is"
    )
    assert choice["labels"] == ["Walking Georgie", "A"]


def test_choice_quirk_answer_colon_c_reads_as_option_a() -> None:
    labels = ["Walking Georgie", "A"]
    assert score_row("longbook_choice_eng", "Answer: C", labels) == 1.0  # 'A' of "Answer"
    assert score_row("longbook_choice_eng", "Answer: A", ["Snowfield", "C"]) == 0.0
    assert score_row("longbook_choice_eng", " C. Snowfield", ["Snowfield", "C"]) == 1.0
    assert score_row("longbook_choice_eng", "the answer is: Snowfield", ["Snowfield", "C"]) == 1.0
    assert score_row("longbook_choice_eng", "i think so, C", ["Snowfield", "C"]) == 1.0
    assert score_row("longbook_choice_eng", "", labels) == 0.0


def test_hub_list_labels_are_handled_where_the_official_code_fails() -> None:
    # kv_retrieval: the official `label in words` with a list label is always False
    assert score_row("kv_retrieval", 'The value is "5e6b-71".', ["5e6b-71"]) == 1.0
    # math_find: a str label makes the official code raise TypeError; compared as a number
    assert score_row("math_find", "88", ["88"]) == 1.0
    assert score_row("math_find", "8.5 or 88", ["88"]) == 0.0  # first number only
    assert score_row("math_find", "0.5", ["0.5"]) == 1.0
    assert score_row("math_find", "ints: 7", [7]) == 1.0  # the GitHub jsonl's int label
    # code_run: the official compares "4" with int 4 (always 0); the label is read as an int
    assert score_row("code_run", "is 4.", ["4"]) == 1.0
    assert score_row("code_run", "is -4", ["-4"]) == 1.0
    assert score_row("code_run", "4 or 5", ["4"]) == 0.0  # the last word counts
    # math_calc: string labels as ints; nested GitHub labels flattened; a JSON list string
    assert score_row("math_calc", "[1, 3, 2]", ["1", "3", "2"]) == 1.0
    assert score_row("math_calc", "1, 3, 9, 2", label_list([[1, 3, 2]])) == pytest.approx(2 / 3)
    assert score_row("math_calc", "[1, 4]", ["[1, 3, 2]"]) == pytest.approx(1 / 3)
    # passkey / number_string: a numeric label compares as its digits
    assert score_row("passkey", "key: 71432", [71432]) == 1.0
    assert score_row("number_string", "0123", [123.0]) == 0.0  # "0123" is not "123"
    assert label_list("5e6b") == ["5e6b"] and label_list(None) == []


def test_other_official_semantics() -> None:
    assert score_row("passkey", " 71432. Remember it.", ["71432"]) == 1.0
    assert score_row("passkey", "key 7143 2", ["71432"]) == 0.0  # the first int only
    assert score_row("number_string", "", ["123"]) == 0.0
    # longdialogue: only the first label, against upper-cased words
    assert score_row("longdialogue_qa_eng", "ace, surely", ["ACE", "ACE ROTHSTEIN"]) == 1.0
    assert score_row("longdialogue_qa_eng", "Rothstein", ["ACE", "ROTHSTEIN"]) == 0.0
    # code_debug: "B." at the start, or the letter / name right after "answer is:"
    debug = ["repack_carchive", "B"]
    assert score_row("code_debug", "B. repack", debug) == 1.0
    assert score_row("code_debug", "The answer is: repack_carchive", debug) == 1.0
    assert score_row("code_debug", "The answer is B", debug) == 0.0  # no colon: no prefix
    assert score_row("longbook_qa_eng", "The Cat.", ["a cat", "dog"]) == 1.0
    assert score_row("longbook_qa_chn", "北京。", ["北京市"]) == pytest.approx(0.8)
    summary = score_row("longbook_sum_eng", "the cat sat", ["The cat sat on the mat"])
    assert summary == pytest.approx(2 * 0.5 * 1 / 1.5)  # ROUGE-Lsum F, lower-cased tokens
    assert choice_labels(["Ice"], ["Fire", "Ice", "a", "b"]) == ["Ice", "B"]
    assert choice_labels(["Ice", "D"], []) == ["Ice", "D"]
    with pytest.raises(ValueError, match="not one of the options"):
        choice_labels(["Water"], ["Fire", "Ice", "a", "b"])


def test_run_scores_each_task(data_dir: Path, tmp_path: Path) -> None:
    tasks = ["passkey", "kv_retrieval", "code_run", "math_find", "longbook_choice_eng", "math_calc"]
    bench = create_benchmark_instance("infinite_bench", tasks, data_dir=data_dir)
    rows = bench.load_datasets()
    replies = [" 71432", "5e6b-71", " 1", "90", "Answer: B", "[1, 3, 5]"]
    answers = dict(zip(rows["question"], replies, strict=True))
    metrics = bench.run_benchmark(EchoAdapter(answers=answers), tmp_path / "c", show_progress=False)
    assert metrics["task_scores"] == {
        "code_run": 100.0,
        "kv_retrieval": 100.0,
        "longbook_choice_eng": 100.0,  # "Answer: B" -> 'A', the gold letter
        "math_calc": 66.67,
        "math_find": 0.0,
        "passkey": 100.0,
    }
    assert metrics["overall_score"] == round((400 + 66.67) / 6, 2)


def test_missing_options_column_and_offline_hub(tmp_path: Path) -> None:
    _write(tmp_path, "code_debug", [{"id": 0, "context": "c", "input": "", "answer": ["f"]}])
    bench = create_benchmark_instance("infinite_bench", ["code_debug"], data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"missing required column\(s\) 'options'"):
        bench.load_datasets()
    with pytest.raises(RuntimeError, match=r"InfiniteBench/passkey\.jsonl.*data_dir="):
        create_benchmark_instance("infinite_bench", ["passkey"]).load_datasets()

"""A small local lm-eval task set over a jsonl: generation, multiple choice, rolling
log-likelihood. ``lm_eval`` fixture: the module, or a skip where lm-eval is not installed
(``make pytest`` installs it and sets SAH_REQUIRE_LM_EVAL: there a missing lm-eval fails)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import ModuleType

import pytest

ROWS = [
    {
        "question": "What is the magic number?",
        "answer": "4217",
        "choices": ["4217", "apples", "Tuesday", "the library"],
        "label": 0,
    },
    {
        "question": "Where did the meeting take place?",
        "answer": "the library",
        "choices": ["the river", "the library", "the sea", "the stars"],
        "label": 1,
    },
    {
        "question": "What did the people of the village grow every autumn?",
        "answer": "wheat",
        "choices": ["music", "fire", "wheat", "numbers"],
        "label": 2,
    },
]

COMMON = """dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
"""

TASKS = {
    "sah_tiny_gen": """output_type: generate_until
doc_to_text: "Answer the question based on the context below. Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n", "."]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
""",
    "sah_tiny_mc": """output_type: multiple_choice
doc_to_text: "Answer the question based on the context below. Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
""",
    "sah_tiny_rolling": """output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{question}}}} The answer is {{{{answer}}}}."
metric_list:
  - metric: word_perplexity
  - metric: bits_per_byte
""",
}


@pytest.fixture(scope="session")
def lm_eval() -> ModuleType:
    if os.environ.get("SAH_REQUIRE_LM_EVAL"):
        return importlib.import_module("lm_eval")
    return pytest.importorskip(
        "lm_eval", reason='lm-eval is not installed: pip install "sparse-attention-hub[lm-eval]"'
    )


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of lm-eval task YAMLs (``sah_tiny_gen``, ``sah_tiny_mc``,
    ``sah_tiny_rolling``) over one local jsonl of three rows."""
    root = tmp_path_factory.mktemp("lm_eval_tasks")
    data = root / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    for name, body in TASKS.items():
        text = f"task: {name}\n" + COMMON.format(data=data) + body.format()
        (root / f"{name}.yaml").write_text(text, encoding="utf-8")
    return root

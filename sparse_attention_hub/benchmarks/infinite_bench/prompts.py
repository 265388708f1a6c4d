"""InfiniteBench's prompts for open models and generation budgets (OpenBMB/InfiniteBench ``src/``).

Templates: ``yarn_mistral_templates`` of ``src/prompt.py`` (the official scripts use them for
every open model: Yarn-Mistral, Yi-200K, ChatGLM3). Fields as ``create_prompt`` of
``src/eval_utils.py`` fills them; budgets: ``DATA_NAME_TO_MAX_NEW_TOKENS``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TASKS: tuple[str, ...] = (
    "passkey",
    "number_string",
    "kv_retrieval",
    "longbook_sum_eng",
    "longbook_choice_eng",
    "longbook_qa_eng",
    "longbook_qa_chn",
    "longdialogue_qa_eng",
    "math_find",
    "math_calc",
    "code_run",
    "code_debug",
)
MAX_NEW_TOKENS: dict[str, int] = {
    "passkey": 6,
    "number_string": 12,
    "kv_retrieval": 50,
    "longbook_sum_eng": 1200,
    "longbook_choice_eng": 40,
    "longbook_qa_eng": 40,
    "longbook_qa_chn": 40,
    "longdialogue_qa_eng": 40,
    "math_find": 3,
    "math_calc": 30000,
    "code_run": 5,
    "code_debug": 5,
}
_OPTIONS = "A. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}"
TEMPLATES: dict[str, str] = {
    "passkey": "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information.\n\n{context}\n\n{input}\n\nThe pass key is",
    "number_string": "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.\n\n{context}\n\n{input}\n\nThe sequence of digits is",
    "kv_retrieval": "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}",
    "longbook_sum_eng": "Summarize the book below.\n\n{context}\n\nSummary:",
    "longbook_choice_eng": "Read the book and answer the question.\n\n{context}\n\nQuestion: {question}\n"
    + _OPTIONS
    + "\n\nThe letter of the correct answer is",
    "longbook_qa_eng": "Read the book and answer the question. Be very concise in your answer.\n\n{context}\n\nQuestion: {question}\nAnswer:",
    "longbook_qa_chn": "阅读以下书籍然后回答问题。\n\n{context}\n\n问题：{question}\n答案：",
    "math_find": "{prefix}\n\n{context}\n\n{input}",
    "math_calc": "Let us calculate the intermediate values of an expression.\n\nExpression: 1 + 3 + 4\nValues: [1, 4, 8]\n\nExpression: 8 - 3 + 2 - 4\nValues: [8, 5, 7, 3]\n\nExpression: {context}\nValues:",
    "code_run": "There is a function called {func} in the following Python code.\n\n{context}\n\nPlease compute the exact value of {func_call}. The value of {func_call} is",
    "code_debug": "Following is a Python code where exactly one of the functions/methods has a deliberate error that makes it crash.\n\n{context}\n\nOptions:\n"
    + _OPTIONS
    + "\n\nThe correct option is:",
    "longdialogue_qa_eng": 'Below is a dialogue script where one random occurrence of a character name is replaced with "$$MASK$$", and you should try to guess who that character is.\n\n{context}\n\nThe name that has been replaced with $$MASK$$ is likely',
}


def _options(item: Mapping[Any, Any]) -> dict[str, str]:
    raw = item.get("options")
    options: list[Any] = [] if raw is None else list(raw)
    if len(options) < 4:
        raise ValueError(f"InfiniteBench row {item.get('id')!r} needs 4 'options', got {options!r}")
    return {f"OPTION_{letter}": str(options[i]) for i, letter in enumerate("ABCD")}


def prompt_fields(task: str, item: Mapping[Any, Any]) -> dict[str, str]:
    """The template fields besides ``context``, as ``create_prompt`` computes them."""
    text = str(item.get("input") or "")
    if task == "code_run":
        calls = re.findall(r"func_[0-9]+\(\-?[0-9]+\)", text)
        if not calls:
            raise ValueError(f"code_run row {item.get('id')!r}: no func_N(x) call in {text!r}")
        return {"func": calls[0].split("(")[0], "func_call": calls[0]}
    if task in ("code_debug", "longbook_choice_eng"):
        return {"question": text, **_options(item)}
    if task == "math_find":
        found = re.findall(r"The .+ of", text)
        if not found:
            raise ValueError(f"math_find row {item.get('id')!r}: no 'The ... of' in {text!r}")
        return {"prefix": f"What is {found[0].lower()[:-3]} in the following list?", "input": text}
    return {"input": text, "question": text}


def split_prompt(task: str, item: Mapping[Any, Any]) -> tuple[str, str]:
    """(context part, question part) of the official prompt, cut right after ``{context}``."""
    head, tail = TEMPLATES[task].split("{context}")
    fields = prompt_fields(task, item)
    return head.format(**fields) + str(item["context"]), tail.format(**fields)

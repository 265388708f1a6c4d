"""LongBench-v2's prompt templates (THUDM/LongBench ``prompts/0shot.txt``, ``0shot_cot.txt``).

The placeholders are filled as ``pred.py`` does: one chained ``str.replace`` per placeholder,
in the order $DOC$, $Q$, $C_A$, $C_B$, $C_C$, $C_D$, each value stripped first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TEMPLATE_0SHOT = (
    "Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\n"
    "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n"
    '(C) $C_C$\n(D) $C_D$\n\nFormat your response as follows: "The correct answer is '
    '(insert answer here)".'
)
TEMPLATE_COT = (
    "Please read the following text and answer the questions below.\n\n<text>\n$DOC$\n</text>\n\n"
    "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n"
    "(C) $C_C$\n(D) $C_D$\n\nLet\u2019s think step by step:"
)
# the second question of the cot subset: the chain of thought without the document
TEMPLATE_COT_ANSWER = (
    "Please read the following text and answer the questions below.\n\nThe text is too long "
    "and omitted here.\n\nWhat is the correct answer to this question: $Q$\nChoices:\n"
    "(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nLet\u2019s think step by step: $COT$\n\n"
    "Based on the above, what is the single, most likely answer choice? Format your response "
    'as follows: "The correct answer is (insert answer here)".'
)
COT_ANSWER_MAX_NEW_TOKENS = 128
TEMPLATES: dict[str, str] = {"0shot": TEMPLATE_0SHOT, "cot": TEMPLATE_COT}
# pred.py: max_new_tokens 128 for 0-shot answers, 1024 for the chain of thought
MAX_NEW_TOKENS: dict[str, int] = {"0shot": 128, "cot": 1024}
PLACEHOLDERS: tuple[tuple[str, str], ...] = (
    ("$DOC$", "context"),
    ("$Q$", "question"),
    ("$C_A$", "choice_A"),
    ("$C_B$", "choice_B"),
    ("$C_C$", "choice_C"),
    ("$C_D$", "choice_D"),
)


def fill(template: str, item: Mapping[Any, Any], cot: str | None = None) -> str:
    """``template`` with pred.py's chained replacements of ``item``'s stripped fields (and,
    last, ``$COT$`` by ``cot`` when given)."""
    text = template
    for placeholder, key in PLACEHOLDERS:
        text = text.replace(placeholder, str(item[key]).strip())
    return text if cot is None else text.replace("$COT$", cot)


def _split(template: str, marker: str, item: Mapping[Any, Any], cot: str | None) -> tuple[str, str]:
    full = fill(template, item, cot)
    context_part = fill(template.split(marker)[0] + marker, item, cot)
    if not full.startswith(context_part):  # a placeholder can not span the cut ("\n" follows)
        raise AssertionError("LongBench-v2 prompt split failed")
    return context_part, full[len(context_part) :]


def split_prompt(subset: str, item: Mapping[Any, Any]) -> tuple[str, str]:
    """(context part, question part) of the official prompt, cut right after the document.

    ``context_part + question_part`` equals pred.py's full prompt. The context part (the
    instruction and the document) is what the adapter prefills once.
    """
    return _split(TEMPLATES[subset], "$DOC$", item, None)


def answer_prompt(item: Mapping[Any, Any], cot: str) -> tuple[str, str]:
    """pred.py's second cot question (``0shot_cot_ans.txt``), cut right after the chain of
    thought: (instruction, question, choices and ``cot``; the request for the answer)."""
    return _split(TEMPLATE_COT_ANSWER, "$COT$", {**item, "context": ""}, cot)

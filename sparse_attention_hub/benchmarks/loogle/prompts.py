"""LooGLE's prompts and generation budgets (bigai-nlco/LooGLE ``config/task2prompt.json``, ``task2maxlen.json``)."""

from __future__ import annotations

TASKS: tuple[str, ...] = ("shortdep_qa", "longdep_qa", "shortdep_cloze", "longdep_summarization")
_QA = "Please answer the question based on the long texts below. \n{input}\nQuestion: {Q}\nAnswer: "
TEMPLATES: dict[str, str] = {
    "shortdep_qa": _QA,
    "longdep_qa": _QA,
    "longdep_summarization": "Please generate a summary of the below paper. \n{input}\n Summarization: ",
    "shortdep_cloze": (
        "Please fill in the clozes based on the given long texts below. Each of the placeholder "
        "'<mask-n>' in the question could be an entity of Person, Location or Organiocation. "
        "The same masks represent the same entity. Output a json format answer, for example: "
        "{{'<mask-0>': 'Bob', '<mask-1>': 'Gorrosion Magazine','<mask-2>': 'Bethel Horizon'}}\n"
        "{input}\n Question: {Q} What are the masked entities? \nAnswer:"
    ),
}
MAX_NEW_TOKENS: dict[str, int] = {
    "shortdep_qa": 300,
    "longdep_qa": 500,
    "longdep_summarization": 500,
    "shortdep_cloze": 50,
}


def split_prompt(task: str, document: str, question: str) -> tuple[str, str]:
    """(context part, question part) of ``template.format(input=..., Q=...)``, cut after the text."""
    head, tail = TEMPLATES[task].split("{input}")
    return head.format() + document, tail.format(Q=question)

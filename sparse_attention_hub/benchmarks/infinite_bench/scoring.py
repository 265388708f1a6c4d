"""InfiniteBench's per-task scores (OpenBMB/InfiniteBench ``src/compute_scores.py``).

Each ``score_<task>(prediction, labels)`` returns a float in [0, 1]; ``labels`` is the row's
``answer`` as a list (see :func:`label_list`). The official quirks are kept, e.g. in
longbook_choice_eng a prediction starting with a letter of "ABCD" is read as that letter, so
"Answer: C" is option A. The official code was written for the GitHub jsonl files, where some
labels are scalars or ints; the hub stores every label as a list of strings. Where that makes
the official code crash or compare a str with an int, the label is converted (see README).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd

_CN_PUNCTUATION = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."


def label_list(answer: Any) -> list[Any]:
    """A label cell as a flat list: a scalar is one label, a nested list (math_calc) is flattened."""
    if answer is None or (isinstance(answer, float) and pd.isna(answer)):
        return []
    if isinstance(answer, (str, int, float)):
        return [answer]
    items = list(answer)
    if items and not isinstance(items[0], (str, int, float)):  # [[79, 59, ...]]
        return [value for inner in items for value in inner]
    return items


def _number(value: Any) -> int | float:
    """A label as the int or float the GitHub jsonl holds ("88" -> 88, "2.5" -> 2.5)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def _json_list(text: str) -> list[Any]:
    """``text`` parsed as a JSON list (never evaluated); ValueError if it is not one."""
    parsed = json.loads(text)
    if not isinstance(parsed, list):
        raise ValueError(f"expected a JSON list of numbers, got {text[:50]!r}")
    return parsed


def _first_text(labels: Sequence[Any]) -> str:
    if not labels:
        raise ValueError("an InfiniteBench row has no label")
    value = labels[0]
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def first_int_match(prediction: str) -> str:
    """The first run of digits in ``prediction`` ("" if none)."""
    return next((item for item in re.split("[^0-9]", prediction) if item), "")


def _words(prediction: str, characters: str) -> list[str]:
    for c in characters:
        prediction = prediction.replace(c, " ")
    return prediction.split()


def score_passkey(prediction: str, labels: Sequence[Any]) -> float:
    """The first integer of the prediction equals the label (passkey and number_string)."""
    return float(_first_text(labels) == first_int_match(prediction))


def score_kv_retrieval(prediction: str, labels: Sequence[Any]) -> float:
    """The label is one of the prediction's words (split on newline : " ' . , ? ! { })."""
    return float(_first_text(labels) in _words(prediction, "\n:\"'.,?!{}"))


def score_code_run(prediction: str, labels: Sequence[Any]) -> float:
    """The last word (split on newline . ` ' " :) is an int equal to the label."""
    words = _words(prediction.strip(), "\n.`'\":")
    if not words:
        return 0.0
    try:
        return float(int(words[-1]) == _number(labels[0]))
    except ValueError:
        return 0.0


def _find_prefix(pred: str, prefixes: Sequence[str], targets: Sequence[str]) -> bool | None:
    """After the first prefix found: does the rest start with a target? None if no prefix."""
    for prefix in prefixes:
        idx = pred.find(prefix)
        if idx == -1:
            continue
        if len(pred) < idx + len(prefix) + 1:
            return False
        rest = pred[idx + len(prefix) + 1 :]
        return any(rest.startswith(t) for t in targets)
    return None


def _squeeze(text: str) -> str:
    while "  " in text:
        text = text.replace("  ", " ")
    return text


def score_code_debug(prediction: str, labels: Sequence[Any]) -> float:
    """``labels`` = [function name, letter]: "B." / "B:" first, else after "answer is:" etc."""
    pred = prediction.strip()
    fn_name, letter = str(labels[0]), str(labels[1])
    if pred[:2] in (f"{letter}.", f"{letter}:"):
        return 1.0
    for c in ["\n", "`", "'", '"', "-", "*", "Option", "option"]:
        pred = pred.replace(c, " ")
    prefixes = ["answer is:", "is:", "answer:", "correct option is:"]
    return float(bool(_find_prefix(_squeeze(pred), prefixes, [letter, fn_name])))


def score_longbook_choice(prediction: str, labels: Sequence[Any]) -> float:
    """``labels`` = [option text, letter]: the first character if in "ABCD", else prefixes."""
    pred = prediction.strip()
    choices = [str(label) for label in labels]
    if pred == "":
        return 0.0
    if pred[0] in "ABCD":
        return float(pred[0] in choices)
    if pred in choices:
        return 1.0
    for c in ["\n", '"', "'", ".", ",", "?", "!", "{", "}"]:
        pred = pred.replace(c, " ")
    pred = _squeeze(pred)
    found = _find_prefix(pred, ["answer is:", "answer:", "answer is", "option is"], choices)
    if found is not None:
        return float(found)
    for word in pred.split():
        if word in "ABCD":  # a substring test, as in the official code ("" and "AB" match)
            return float(word in choices)
    return 0.0


def score_longdialogue(prediction: str, labels: Sequence[Any]) -> float:
    """The first label is one of the upper-cased words of the prediction."""
    words = [w.upper() for w in _words(prediction.strip(), "\n:\"'.,?!{}")]
    return float(_first_text(labels) in words)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def normalize_zh_answer(text: str) -> str:
    """Lower case, drop English and Chinese punctuation, remove whitespace."""
    punctuation = set(string.punctuation + _CN_PUNCTUATION)
    return "".join("".join(ch for ch in text.lower() if ch not in punctuation).split())


def f1_tokens(prediction: Sequence[str], gold: Sequence[str]) -> float:
    """Token-multiset F1."""
    same = sum((Counter(prediction) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def score_qa_eng(prediction: str, labels: Sequence[Any]) -> float:
    """Best word F1 over the labels, after :func:`normalize_answer`."""
    pred = normalize_answer(prediction).split()
    return max((f1_tokens(pred, normalize_answer(str(g)).split()) for g in labels), default=0.0)


def score_qa_chn(prediction: str, labels: Sequence[Any]) -> float:
    """Best character F1 over the labels, after :func:`normalize_zh_answer`."""
    pred = list(normalize_zh_answer(prediction))
    return max((f1_tokens(pred, list(normalize_zh_answer(str(g)))) for g in labels), default=0.0)


def score_longbook_sum(prediction: str, labels: Sequence[Any]) -> float:
    """ROUGE-Lsum F of ``evaluate``'s "rouge" (rouge_score, no stemmer), best over the labels."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=False)
    return max(
        (scorer.score(str(g), prediction)["rougeLsum"].fmeasure for g in labels), default=0.0
    )


def score_math_find(prediction: str, labels: Sequence[Any]) -> float:
    """The first number (``\\d+\\.\\d+|\\d+``, no sign) of the prediction equals the label."""
    label = _number(labels[0])
    first = re.search(r"\d+\.\d+|\d+", prediction)
    if first is None:
        return 0.0
    text = first.group(0).strip()
    if isinstance(label, int) and "." not in text:
        return float(int(text) == label)
    return float(float(text) == label)


def score_math_calc(prediction: str, labels: Sequence[Any]) -> float:
    """Share of the labels matched by the prediction's integers in order, up to the first miss."""
    if len(labels) == 1 and isinstance(labels[0], str) and labels[0].lstrip().startswith("["):
        labels = label_list(_json_list(labels[0]))  # a whole list stored as one string
    expected = [_number(v) for v in labels]
    found = [int(item) for item in re.split("[^0-9]", prediction) if item]
    count = 0
    for want, got in zip(expected, found, strict=False):
        if want != got:
            break
        count += 1
    return count / len(expected) if expected else 0.0


SCORERS = {
    "passkey": score_passkey,
    "number_string": score_passkey,
    "kv_retrieval": score_kv_retrieval,
    "longbook_sum_eng": score_longbook_sum,
    "longbook_choice_eng": score_longbook_choice,
    "longbook_qa_eng": score_qa_eng,
    "longbook_qa_chn": score_qa_chn,
    "longdialogue_qa_eng": score_longdialogue,
    "math_find": score_math_find,
    "math_calc": score_math_calc,
    "code_run": score_code_run,
    "code_debug": score_code_debug,
}


def choice_labels(answer: Any, options: Any) -> list[str]:
    """``get_answer`` of eval_utils.py: [option text, its letter] for the choice tasks."""
    answers = label_list(answer)
    options = [str(o) for o in label_list(options)]
    if len(answers) == 2 and str(answers[1]) in ("A", "B", "C", "D"):
        return [str(answers[0]), str(answers[1])]
    if len(answers) != 1 or str(answers[0]) not in options:
        raise ValueError(f"choice answer {answers!r} is not one of the options {options!r}")
    return [str(answers[0]), "ABCD"[options.index(str(answers[0]))]]


def score_row(task: str, prediction: Any, labels: Sequence[Any]) -> float:
    """The official score of one row in [0, 1] (a missing prediction is "")."""
    text = (
        ""
        if prediction is None or (isinstance(prediction, float) and pd.isna(prediction))
        else str(prediction)
    )
    return SCORERS[task](text, labels)

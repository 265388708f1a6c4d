"""AIME answer extraction: Qwen2.5-Math's ``extract_answer`` and integer normalisation.

``extract_answer`` follows ``evaluation/parser.py`` of QwenLM/Qwen2.5-Math, in its order of
fallbacks: Minerva's "final answer is $X$. I hope"; the last ``boxed`` (its braces balanced,
or up to the next ``$`` for ``\\boxed 5``); "he answer is"; "final answer is"; "答案是"; the
last number. Then newlines with their indentation go, and a leading ":" or a trailing "." or
"/" is dropped. AIME answers are integers 0-999, so where Qwen2.5-Math normalises LaTeX
with ``strip_string`` and compares with sympy, :func:`normalize_integer` reads the integer,
keeping ``strip_string``'s rule that drops a short ``k = `` prefix ("x = 25" is 25).
"""

from __future__ import annotations

import re

_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_INTEGER = re.compile(r"-?\d+(?:\.0*)?")


def _boxed_content(pred_str: str) -> str:
    """What follows the last "boxed": the balanced {...} content, or text up to a "$"."""
    tail = pred_str.split("boxed")[-1]
    if not tail:
        return ""
    if tail[0] != "{":
        return tail.split("$")[0].strip()
    depth, content = 1, []
    for char in tail[1:]:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                break
        content.append(char)
    return "".join(content)


def _raw_answer(pred_str: str) -> str:
    if "final answer is $" in pred_str and "$. I hope" in pred_str:
        return pred_str.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    if "boxed" in pred_str:
        return _boxed_content(pred_str)
    for marker in ("he answer is", "final answer is"):
        if marker in pred_str:
            return pred_str.split(marker)[-1].strip()
    if "答案是" in pred_str:
        return pred_str.split("答案是")[1].strip().split("\n\n")[0].strip()
    numbers = _LAST_NUMBER.findall(pred_str.replace(",", ""))
    return numbers[-1] if numbers else ""


def extract_answer(pred_str: str) -> str:
    """The answer string of a solution, by Qwen2.5-Math's fallbacks ("" if none)."""
    pred = re.sub(r"\n\s*", "", _raw_answer(pred_str.replace("\u043a\u0438", "")))
    if pred.startswith(":"):
        pred = pred[1:]
    if pred.endswith(".") or pred.endswith("/"):
        pred = pred[:-1]
    return pred.strip()  # strip_string starts with strip()


def drop_short_prefix(text: str) -> str:
    """``strip_string``'s rule: "k = 25" is "25" (one "=", at most 2 characters before it).

    As in Qwen2.5-Math's and lm-eval's ``strip_string``, the left side is measured before
    spaces are removed, so "x = 25" loses "x " but "ab = 25" and "a = b = 25" stay.
    """
    parts = text.split("=")
    if len(parts) == 2 and len(parts[0]) <= 2:
        return parts[1]
    return text


def normalize_integer(answer: object) -> int | None:
    """``answer`` as an int, or None if it is not one.

    Removes ``$``, a ``\\text{}`` wrapper, a degree sign, ``%``, a short ``k = `` prefix
    (:func:`drop_short_prefix`), spaces (also ``\\,``, ``\\!``, ``~``), thousands commas and a
    trailing period; "033" is 33, "33.0" is 33, "x = 25" is 25, "3.5" and "\\frac12" are None.
    """
    text = str(answer).strip()
    for _ in range(2):
        text = _TEXT_WRAPPER.sub(r"\1", text)
    for junk in ("$", "\\!", "^\\circ", "^{\\circ}", "\\%", "%"):
        text = text.replace(junk, "")
    text = drop_short_prefix(text)
    for junk in ("\\,", "\\;", "~", " "):
        text = text.replace(junk, "")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text).rstrip(".")
    if not _INTEGER.fullmatch(text):
        return None
    return int(text.split(".")[0])


def is_correct(prediction: str, answer: object) -> bool:
    """The integer extracted from ``prediction`` equals the gold ``answer`` (as an integer)."""
    gold = normalize_integer(answer)
    if gold is None:
        raise ValueError(f"AIME gold answer {answer!r} is not an integer")
    return normalize_integer(extract_answer(prediction)) == gold

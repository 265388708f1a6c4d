"""ROUGE-L F as LongBench computes it: the ``rouge`` package (pltrdy, 1.0.1) re-implemented.

LongBench calls ``Rouge().get_scores([prediction], [ground_truth], avg=True)["rouge-l"]["f"]``.
That package splits each text into sentences on ".", collapses whitespace inside each, and
computes summary-level ROUGE-L with *sets* of words (``exclusive=True``):

- m, n = the number of distinct words of the reference and of the prediction;
- for every reference sentence and every prediction sentence, one LCS is reconstructed by the
  package's backtracking rule, and its words join a running union set;
- LCS_u = the size of that union; R = LCS_u / m, P = LCS_u / n, F = 2PR / (P + R + 1e-8).

A text with no sentence raises ValueError (LongBench turns that into a score of 0). One
difference: the package reconstructs the LCS recursively and so fails (and LongBench scores
0) on sentence pairs of more than about 1000 words; this version has no such limit.
"""

from __future__ import annotations


def split_sentences(text: str) -> list[str]:
    """The package's sentence split: on ".", empty pieces dropped, inner whitespace collapsed."""
    return [" ".join(piece.split()) for piece in text.split(".") if len(piece) > 0]


def _words(sentences: list[str]) -> list[str]:
    return [word for sentence in sentences for word in sentence.split(" ")]


def lcs_words(x: list[str], y: list[str]) -> list[str]:
    """The words of x in the one LCS of x and y that the package's backtracking picks."""
    n, m = len(x), len(y)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        row, above, xi = table[i], table[i - 1], x[i - 1]
        for j in range(1, m + 1):
            row[j] = above[j - 1] + 1 if xi == y[j - 1] else max(above[j], row[j - 1])
    picked: list[str] = []
    i, j = n, m
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            picked.append(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    picked.reverse()
    return picked


def rouge_l_summary_f(hypothesis: str, reference: str) -> float:
    """ROUGE-L F (summary level, word sets) of ``hypothesis`` against ``reference``."""
    hyp_sentences = split_sentences(hypothesis)
    ref_sentences = split_sentences(reference)
    if not hyp_sentences:
        raise ValueError("Hypothesis is empty.")
    if not ref_sentences:
        raise ValueError("Reference is empty.")
    m = len(set(_words(ref_sentences)))
    n = len(set(_words(hyp_sentences)))
    union: set[str] = set()
    for ref_sentence in ref_sentences:
        ref_words = ref_sentence.split(" ")
        for hyp_sentence in hyp_sentences:
            union.update(lcs_words(ref_words, hyp_sentence.split(" ")))
    recall = len(union) / m
    precision = len(union) / n
    return 2.0 * ((precision * recall) / (precision + recall + 1e-8))

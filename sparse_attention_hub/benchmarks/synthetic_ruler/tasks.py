"""RULER-style synthetic tasks, each a builder of one sample from a haystack size.

A builder ``build(rng, depth, size) -> Sample`` makes one sample whose haystack has ``size``
units (noise sentences, or list entries for common-word extraction); the generator searches the
largest ``size`` that fits the token budget. ``depth`` in [0, 1] places the (first) queried needle. A question starts with a newline: the
adapter's prompt is ``context + question + answer_prefix`` as given (RULER's templates put the
question on the line after the context).
The templates follow NVIDIA/RULER's ``scripts/data/synthetic`` (niah, variable_tracking,
common_words_extraction), with a noise haystack in place of the essay one (no download).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

_ADJECTIVE_TEXT = (
    "amber ancient brave bright calm clever cold crimson curious dusty eager early faint "
    "fancy fierce gentle giant golden grumpy happy hidden hollow humble icy jolly kind lazy "
    "little lively lonely loud lucky mellow merry misty modern muddy narrow noble odd orange "
    "pale patient plain polite proud purple quick quiet rapid rare red rough round royal "
    "rusty sandy scarlet shiny short silent silver simple sleepy slow smooth snowy soft sour "
    "spicy steady sticky stormy strange sunny swift tall tame tender tidy tiny velvet vivid "
    "warm wild windy wise witty wooden young zesty"
)
_ADJECTIVES = tuple(_ADJECTIVE_TEXT.split())
_NOUN_TEXT = (
    "anchor apple arrow badger banjo barrel basket beacon beetle bicycle blanket bottle "
    "bridge bucket cabin camel candle canyon carpet castle cellar chimney cloud comet "
    "compass cottage crayon dolphin dragon drum eagle engine falcon feather fiddle forest "
    "fountain garden glacier goblet harbor helmet island jacket kettle ladder lantern lemon "
    "lizard magnet meadow mirror monkey mountain needle notebook ocean otter paddle parrot "
    "pebble pencil pepper piano pillow pirate planet pocket puzzle rabbit river rocket "
    "saddle sailor scarf shovel spider statue storm sunset teapot thimble tiger tomato tower "
    "trumpet tunnel turtle umbrella valley violin wagon walrus window wizard"
)
_NOUNS = tuple(_NOUN_TEXT.split())
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass
class Sample:
    """One generated question on one context, with its gold answers."""

    context: str
    question: str
    answer_prefix: str
    answer: list[str]
    meta: dict[str, object] = field(default_factory=dict)


def random_key(rng: random.Random) -> str:
    """An adjective-noun key such as ``"sleepy-lantern"``."""
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"


def distinct_keys(rng: random.Random, count: int) -> list[str]:
    keys: list[str] = []
    while len(keys) < count:
        key = random_key(rng)
        if key not in keys:
            keys.append(key)
    return keys


def random_number(rng: random.Random, digits: int = 7) -> str:
    return str(rng.randint(10 ** (digits - 1), 10**digits - 1))


def pseudo_words(rng: random.Random, count: int, syllables: int = 3) -> list[str]:
    """``count`` distinct pronounceable pseudo-words (consonant-vowel syllables)."""
    words: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < count:
        word = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
        if word not in words:
            words.add(word)
            ordered.append(word)
    return ordered


def insert_at_depths(units: list[str], inserts: list[tuple[float, str]]) -> str:
    """Join ``units`` with each insert placed at its depth (0 = start, 1 = end)."""
    placed = list(units)
    positions = sorted(
        ((round(d * len(units)), i, text) for i, (d, text) in enumerate(inserts)), reverse=True
    )
    for position, _, text in positions:
        placed.insert(position, text)
    return " ".join(placed)


def _spread_depths(rng: random.Random, first: float, count: int) -> list[float]:
    return [first] + [rng.random() for _ in range(count - 1)]


def _niah(
    num_keys: int, num_values: int, num_queries: int
) -> Callable[[random.Random, float, int], Sample]:
    def build(rng: random.Random, depth: float, size: int) -> Sample:
        keys = distinct_keys(rng, num_keys)
        values = {key: [random_number(rng) for _ in range(num_values)] for key in keys}
        queried = keys[:num_queries]
        needles = [
            f"One of the special magic numbers for {key} is: {value}."
            for key in keys
            for value in values[key]
        ]
        # the first needle of the first queried key sits at ``depth``; the others at random
        first, others = needles[0], needles[1:]
        rng.shuffle(others)
        depths = _spread_depths(rng, depth, len(needles))
        haystack = insert_at_depths(
            [NOISE] * size, list(zip(depths, [first, *others], strict=True))
        )
        query = (
            queried[0] if len(queried) == 1 else ", ".join(queried[:-1]) + ", and " + queried[-1]
        )
        return Sample(
            context=(
                "Some special magic numbers are hidden within the following text. Make sure to "
                "memorize it. I will quiz you about the numbers afterwards.\n" + haystack
            ),
            question=f"\nWhat are all the special magic numbers for {query} mentioned in the provided text?",
            answer_prefix=f" The special magic numbers for {query} mentioned in the provided text are",
            answer=[value for key in queried for value in values[key]],
            meta={"depth": depth},
        )

    return build


def _variable_tracking(num_hops: int = 4) -> Callable[[random.Random, float, int], Sample]:
    def build(rng: random.Random, depth: float, size: int) -> Sample:
        names: list[str] = []
        while len(names) < num_hops + 1:
            name = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
            if name not in names:
                names.append(name)
        value = random_number(rng, 5)
        chain = [f"VAR {names[0]} = {value}."] + [
            f"VAR {names[i]} = VAR {names[i - 1]}." for i in range(1, len(names))
        ]
        # the chain keeps its order: depths increase from the sample's depth towards the end
        later = sorted(depth + (1.0 - depth) * rng.random() for _ in range(len(chain) - 1))
        haystack = insert_at_depths([NOISE] * size, list(zip([depth, *later], chain, strict=True)))
        return Sample(
            context=(
                "Memorize and track the chain(s) of variable assignment hidden in the following "
                "text.\n\n" + haystack
            ),
            question=f"\nQuestion: Find all variables that are assigned the value {value} in the text above.",
            answer_prefix=(
                " Answer: According to the chain(s) of variable assignment in the text above, "
                f"{len(names)} variables are assigned the value {value}, they are: "
            ),
            answer=names,
            meta={"depth": depth},
        )

    return build


def _common_words(
    num_common: int, freq_common: int, freq_uncommon: int
) -> Callable[[random.Random, float, int], Sample]:
    def build(rng: random.Random, depth: float, size: int) -> Sample:
        words = pseudo_words(rng, num_common + size)
        common, uncommon = words[:num_common], words[num_common:]
        entries = common * freq_common + uncommon * freq_uncommon
        rng.shuffle(entries)
        listing = "\n".join(f"{i + 1}. {word}" for i, word in enumerate(entries))
        return Sample(
            context=(
                "Below is a numbered list of words. In these words, some appear more often than "
                "others. Memorize the ones that appear most often.\n" + listing
            ),
            question=f"\nQuestion: What are the {num_common} most common words in the above list?",
            answer_prefix=f" Answer: The top {num_common} words that appear most often in the list are:",
            answer=common,
            meta={"depth": depth},
        )

    return build


def task_builder(task: str, length: int) -> Callable[[random.Random, float, int], Sample]:
    """The builder of ``task`` for a context of about ``length`` tokens."""
    if task == "niah_single":
        return _niah(1, 1, 1)
    if task == "niah_multikey":
        return _niah(4, 1, 1)
    if task == "niah_multivalue":
        return _niah(1, 4, 1)
    if task == "niah_multiquery":
        return _niah(4, 1, 4)
    if task == "vt":
        return _variable_tracking()
    if task == "cwe":
        # RULER uses 30/3 repetitions at >= 4k tokens; shorter contexts cannot hold that many
        return _common_words(10, 30, 3) if length >= 4096 else _common_words(10, 2, 1)
    raise ValueError(f"unknown synthetic task {task!r}; known: {', '.join(TASKS)}")


TASKS: tuple[str, ...] = (
    "niah_single",
    "niah_multikey",
    "niah_multivalue",
    "niah_multiquery",
    "vt",
    "cwe",
)
TASK_MAX_NEW_TOKENS = {
    "niah_single": 128,
    "niah_multikey": 128,
    "niah_multivalue": 128,
    "niah_multiquery": 128,
    "vt": 30,
    "cwe": 120,
}

"""Training data for the trained tiny model: synthetic_ruler's needle prompts, token ids.

A sample is built exactly as ``benchmarks/synthetic_ruler`` builds its ``niah_single`` and
``niah_multikey`` rows (same noise haystack, needle sentence, key words, question and answer
prefix; a test checks that the texts agree), then rendered as the adapter renders it: the
tokenizer's chat template around ``context + question`` as one user turn, the generation
prompt, then the answer prefix. The target is `` VALUE.`` and the end-of-turn token, so greedy
decoding stops by itself. testing/ imports nothing else of the package, hence the copy of the
templates rather than an import.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
ADJECTIVES = tuple(
    [
        "amber",
        "ancient",
        "brave",
        "bright",
        "calm",
        "clever",
        "cold",
        "crimson",
        "curious",
        "dusty",
        "eager",
        "early",
        "faint",
        "fancy",
        "fierce",
        "gentle",
        "giant",
        "golden",
        "grumpy",
        "happy",
        "hidden",
        "hollow",
        "humble",
        "icy",
        "jolly",
        "kind",
        "lazy",
        "little",
        "lively",
        "lonely",
        "loud",
        "lucky",
        "mellow",
        "merry",
        "misty",
        "modern",
        "muddy",
        "narrow",
        "noble",
        "odd",
        "orange",
        "pale",
        "patient",
        "plain",
        "polite",
        "proud",
        "purple",
        "quick",
        "quiet",
        "rapid",
        "rare",
        "red",
        "rough",
        "round",
        "royal",
        "rusty",
        "sandy",
        "scarlet",
        "shiny",
        "short",
        "silent",
        "silver",
        "simple",
        "sleepy",
        "slow",
        "smooth",
        "snowy",
        "soft",
        "sour",
        "spicy",
        "steady",
        "sticky",
        "stormy",
        "strange",
        "sunny",
        "swift",
        "tall",
        "tame",
        "tender",
        "tidy",
        "tiny",
        "velvet",
        "vivid",
        "warm",
        "wild",
        "windy",
        "wise",
        "witty",
        "wooden",
        "young",
        "zesty",
    ]
)
NOUNS = tuple(
    [
        "anchor",
        "apple",
        "arrow",
        "badger",
        "banjo",
        "barrel",
        "basket",
        "beacon",
        "beetle",
        "bicycle",
        "blanket",
        "bottle",
        "bridge",
        "bucket",
        "cabin",
        "camel",
        "candle",
        "canyon",
        "carpet",
        "castle",
        "cellar",
        "chimney",
        "cloud",
        "comet",
        "compass",
        "cottage",
        "crayon",
        "dolphin",
        "dragon",
        "drum",
        "eagle",
        "engine",
        "falcon",
        "feather",
        "fiddle",
        "forest",
        "fountain",
        "garden",
        "glacier",
        "goblet",
        "harbor",
        "helmet",
        "island",
        "jacket",
        "kettle",
        "ladder",
        "lantern",
        "lemon",
        "lizard",
        "magnet",
        "meadow",
        "mirror",
        "monkey",
        "mountain",
        "needle",
        "notebook",
        "ocean",
        "otter",
        "paddle",
        "parrot",
        "pebble",
        "pencil",
        "pepper",
        "piano",
        "pillow",
        "pirate",
        "planet",
        "pocket",
        "puzzle",
        "rabbit",
        "river",
        "rocket",
        "saddle",
        "sailor",
        "scarf",
        "shovel",
        "spider",
        "statue",
        "storm",
        "sunset",
        "teapot",
        "thimble",
        "tiger",
        "tomato",
        "tower",
        "trumpet",
        "tunnel",
        "turtle",
        "umbrella",
        "valley",
        "violin",
        "wagon",
        "walrus",
        "window",
        "wizard",
    ]
)
INTRO = (
    "Some special magic numbers are hidden within the following text. Make sure to memorize "
    "it. I will quiz you about the numbers afterwards.\n"
)
#: synthetic_ruler's generation budget of the needle tasks: a row's prompt fits length - this.
GENERATION_BUDGET = 128


@dataclass(frozen=True)
class NeedleText:
    """One needle question as text: the benchmark row's fields and the gold value."""

    context: str
    question: str
    answer_prefix: str
    value: str
    depth: float


def _distinct_keys(rng: random.Random, count: int) -> list[str]:
    keys: list[str] = []
    while len(keys) < count:
        key = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        if key not in keys:
            keys.append(key)
    return keys


def needle_text(rng: random.Random, num_keys: int, units: int, depth: float) -> NeedleText:
    """``num_keys`` needles (the first one asked, at ``depth``) in ``units`` noise sentences."""
    keys = _distinct_keys(rng, num_keys)
    values = [str(rng.randint(10**6, 10**7 - 1)) for _ in keys]
    needles = [
        f"One of the special magic numbers for {k} is: {v}."
        for k, v in zip(keys, values, strict=True)
    ]
    depths = [depth] + [rng.random() for _ in needles[1:]]
    placed = [NOISE] * units
    order = sorted(
        (
            (round(d * units), i, text)
            for i, (d, text) in enumerate(zip(depths, needles, strict=True))
        ),
        reverse=True,
    )
    for position, _, text in order:
        placed.insert(position, text)
    key = keys[0]
    return NeedleText(
        context=INTRO + " ".join(placed),
        question=f"\nWhat are all the special magic numbers for {key} mentioned in the provided text?",
        answer_prefix=f" The special magic numbers for {key} mentioned in the provided text are",
        value=values[0],
        depth=depth,
    )


def prompt_ids(tokenizer: Any, sample: NeedleText) -> list[int]:
    """The prompt's ids as the adapter encodes them (chat template, then the answer prefix)."""
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": sample.context + sample.question}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tokenizer(rendered + sample.answer_prefix, add_special_tokens=False)["input_ids"]
    return list(ids)


def target_ids(tokenizer: Any, sample: NeedleText) -> list[int]:
    """`` VALUE.`` then end of turn: what greedy decoding should write."""
    ids = tokenizer(f" {sample.value}.", add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id]


class UnitSizer:
    """How many noise sentences make a prompt of about ``length`` tokens (measured once)."""

    def __init__(self, tokenizer: Any) -> None:
        rng = random.Random(0)
        small = prompt_ids(tokenizer, needle_text(rng, 4, 0, 0.5))
        big = prompt_ids(tokenizer, needle_text(random.Random(0), 4, 64, 0.5))
        self.overhead = len(small)
        self.per_unit = (len(big) - len(small)) / 64

    def units(self, length: int) -> int:
        """Noise units for a prompt of at most ``length`` tokens (the benchmark's sizing)."""
        return max(0, int((length - self.overhead) / self.per_unit))

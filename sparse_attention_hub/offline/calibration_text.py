"""A built-in calibration text, so that offline calibration runs without any download.

A few paragraphs of varied text (narrative, exposition, dialogue, code, numbers, lists,
instructions), written for this library. Statistics of the projections are coarse (a mean
|activation| per channel), so a short varied text ranks channels usefully; pass your own
texts (``--texts FILE``) for a calibration closer to your data.
"""

from __future__ import annotations

_PARAGRAPHS = (
    """The river ran low that summer. Mara walked along its bank every morning before the
market opened, counting the herons that stood in the shallows and the boats pulled up on the
gravel. Her grandfather had kept a notebook of the same walk for forty years, and she had
found it in a drawer beneath his maps: the dates in neat columns, the number of birds, a word
or two about the weather. Some pages held only a single line. Others described storms, floods,
a fox that followed him for a week, the winter the ice reached the old mill.""",
    """Attention lets every token of a sequence look back at the tokens before it. For each
query the model computes a score against every key, turns the scores into weights with a
softmax, and returns the weighted sum of the values. The cost grows with the length of the
context: a document of a hundred thousand tokens means a hundred thousand scores for every
new token generated. Sparse attention keeps only the keys that matter most, chosen by a cheap
estimate, and spends the exact computation on those alone.""",
    """"Did you lock the back door?" asked Tomas, already halfway up the stairs.
"I thought you did," said Lena. "You were the last one outside."
"I was carrying the chairs. You said you would check."
"Then neither of us checked." She sighed, put down her book and went to look. The door was
open a hand's width, and the cold air smelled of rain and cut grass. On the step sat the
neighbour's cat, perfectly still, as if it had been waiting to be invited in.""",
    """def moving_average(values, window):
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    total = sum(values[:window])
    result = [total / window]
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        result.append(total / window)
    return result

for row in read_table("measurements.csv"):
    print(row["station"], moving_average(row["readings"], 7))""",
    """Quarterly report, third quarter. Revenue rose 12.4 percent to 48.7 million, driven by
the northern region (up 21 percent) and by the new subscription plan, which reached 130,000
customers in September. Operating costs grew 6.1 percent. The board approved a dividend of
0.35 per share, payable on 15 November to shareholders of record on 1 November. Inventory
fell from 9.2 to 7.8 million units; the warehouse in Lyon closed on 30 August.""",
    """To replace the filter: 1. Switch the unit off and unplug it. 2. Open the front panel
by pressing both clips at once. 3. Pull the old filter straight out; do not twist it. 4. Write
today's date on the label of the new filter. 5. Slide it in until it clicks, arrow pointing
up. 6. Close the panel, plug the unit in and hold the reset button for three seconds. The
light turns green when the unit has accepted the new filter.""",
    """In 1854 a physician mapped the cases of cholera in one district of London and noticed
that they gathered around a single water pump. He persuaded the parish to remove the pump's
handle, and the outbreak, already fading, ended soon after. The map became a classic of
epidemiology, less for what it proved at the time than for the way of thinking it showed:
collect the cases, place them in space, and let the pattern suggest the cause.""",
    """Ingredients for four: 500 g flour, 10 g salt, 7 g dried yeast, 350 ml warm water, two
spoons of olive oil. Mix the dry ingredients, add the water and oil, and knead for ten
minutes until the dough is smooth. Cover and leave it for an hour, until doubled. Shape two
loaves, let them rise for thirty minutes more, slash the tops and bake at 230 degrees for
twenty-five minutes. They are done when the base sounds hollow when tapped.""",
    """Question: A train leaves at 09:40 and arrives at 13:05. How long is the journey?
Answer: From 09:40 to 12:40 is three hours, and from 12:40 to 13:05 is twenty-five minutes,
so the journey takes three hours and twenty-five minutes. Question: Which is larger, 0.7 or
0.65? Answer: 0.7, because seventy hundredths are more than sixty-five hundredths. Question:
What is the capital of Australia? Answer: Canberra.""",
    """The committee shall meet at least four times a year. A quorum is half of its members
plus one. Decisions are taken by a simple majority of the members present; in the event of a
tie the chair has a casting vote. Minutes of each meeting are circulated within ten working
days and approved at the next meeting. Any member may ask for an item to be added to the
agenda by writing to the secretary no later than seven days before the meeting.""",
)

#: The built-in calibration text: every paragraph, separated by blank lines.
DEFAULT_CALIBRATION_TEXT = "\n\n".join(_PARAGRAPHS) + "\n"

__all__ = ["DEFAULT_CALIBRATION_TEXT"]

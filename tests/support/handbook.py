"""Read Unit 002 of the City & Guilds 3085 handbook from its verbatim excerpt.

The excerpt mixes three markups (HTML-ish tags, markdown headings and
bullets), so every heading is matched in all of them.
"""

import html
import re

_HEADING = r"(?m)^(?:#+ *|\*\*|<b>)?{}(?:\*\*|</b>)?[ \t]*$"
_CRITERIA = re.compile(_HEADING.format("Assessment criteria"))
_OUTCOME = re.compile(_HEADING.format("Learning outcome"))
_RANGE = re.compile(_HEADING.format("Range"))
_CODE = re.compile(r"(?:(?<=\s)|(?<=>))(\d\.\d)\s+")
_BOLD = re.compile(r"<b>(.*?)</b>|\*\*(.*?)\*\*")


def normalise(text: str) -> str:
    """Return text without markup and bullets, on one line, single-spaced."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", text)).replace("**", "")
    text = re.sub(r"[•◆]", " ", text)
    text = re.sub(r"(?m)^\s*-\s+", " ", text)
    text = re.sub(r"\s+", " ", text)
    # "<b>outcomes</b> ." leaves a space before the stop; the words are unchanged.
    return re.sub(r"\s+([.,;:?!])", r"\1", text).strip()


def _criteria_blocks(text: str) -> list[str]:
    """Return the raw text of each 'Assessment criteria' block, up to its range."""
    blocks = _CRITERIA.split(text)[1:]
    return [_OUTCOME.split(_RANGE.split(block)[0])[0] for block in blocks]


def criteria_segments(text: str) -> dict[str, str]:
    """Map each criterion code to its raw (still marked-up) text."""
    segments = {}
    for block in _criteria_blocks(text):
        parts = _CODE.split(block)
        segments.update(zip(parts[1::2], parts[2::2]))
    return segments


def handbook_criteria(text: str) -> dict[str, str]:
    """Map each assessment criterion code to its normalised text."""
    return {code: normalise(raw) for code, raw in criteria_segments(text).items()}


def handbook_bold_terms(text: str) -> dict[str, list[str]]:
    """Map each criterion code to the terms the handbook bolds in it."""
    return {
        code: [a or b for a, b in _BOLD.findall(raw)]
        for code, raw in criteria_segments(text).items()
    }


def handbook_outcomes(text: str) -> dict[str, str]:
    """Map each learning outcome number to its title."""
    outcomes = {}
    for block in _OUTCOME.split(text)[1:]:
        flat = normalise(_CRITERIA.split(block)[0])
        number, title = flat.split("The learner will:", 1)[1].split(None, 1)
        outcomes[number] = title
    return outcomes

"""Group words into segments that are also subtitle cues a player can show.

A segment ends at a sentence end (not after a common abbreviation such as "Mr." or "e.g.";
a sentence under 2 s only where a pause follows it), at a pause, where the language changes
(a segment is in one language), or where it would break
the usual subtitle rules: at most `max_line_count` lines of at most `max_line_width` characters
(characters, not bytes), at most `max_words_per_line` words a line when set, and at most
`max_seconds`. The three line options have openai-whisper's names
and meaning (its --max_line_width, --max_line_count, --max_words_per_line); here they apply by
default, with or without --word-timestamps. A cue forced to end early ends after the last
comma, semicolon or sentence end in its second half, if it has one, rather than mid-phrase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from batchscribe.options import TranscribeOptions
from batchscribe.results import Segment, Word

SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")
CLAUSE_ENDS = SENTENCE_ENDS + (",", ";", ":", "、", "，", "；")
PAUSE_SECONDS = 1.0
MIN_SENTENCE_SECONDS = 2.0
# A sentence shorter than MIN_SENTENCE_SECONDS still ends its segment when a pause this long follows
# it: "What he said. <0.9 s> His father..." is two segments, as a speaker's turn of breath says.
SENTENCE_PAUSE_SECONDS = 0.5
# Words whose final "." does not end a sentence (English; lower-case, as written).
ABBREVIATIONS = frozenset(
    "mr. mrs. ms. dr. st. prof. vs. e.g. i.e. jr. sr. mt. ft. vol. fig. approx. dept. gen. gov. sgt. "
    "capt. col. lt. rev. inc. ltd. co. corp. jan. feb. mar. apr. aug. sept. sep. oct. nov. dec.".split()
)


@dataclass(frozen=True)
class CueRules:
    """Subtitle limits for each segment; the defaults are the common broadcast and streaming rules."""

    max_line_width: int = 42  # characters a line
    max_line_count: int = 2  # lines a cue
    max_words_per_line: Optional[int] = None  # None: no limit
    max_seconds: float = 7.0  # a cue's length


def cue_rules(options: TranscribeOptions) -> CueRules:
    return CueRules(options.max_line_width, options.max_line_count, options.max_words_per_line)


def ends_sentence(word: str) -> bool:
    """Whether `word` ends a sentence: "Yes." does, "Mr." and "e.g." and an initial ("J.") do not."""
    text = word.strip().strip("\"'”’)]»")
    if not text.endswith(SENTENCE_ENDS):
        return False
    if not text.endswith("."):
        return True
    is_initial = len(text) == 2 and text[0].isalpha() and text[0].isupper() and text[0] != "I"  # "J. Smith"
    return text.lower().lstrip("\"'“‘([«") not in ABBREVIATIONS and not is_initial


def layout(words: list[Word], rules: CueRules) -> list[str]:
    """The lines `words` take on screen: greedy, a line broken before the word that would not fit."""
    lines: list[list[str]] = []
    width = 0
    for word in words:
        text = word.word.strip()
        if not text:
            continue
        full = rules.max_words_per_line is not None and bool(lines) and len(lines[-1]) >= rules.max_words_per_line
        if lines and not full and width + len(word.word) <= rules.max_line_width:
            lines[-1].append(word.word)
            width += len(word.word)
        else:
            lines.append([text])
            width = len(text)
    return ["".join(line).strip() for line in lines]


def _fits(words: list[Word], rules: CueRules) -> bool:
    return len(layout(words, rules)) <= rules.max_line_count and words[-1].end - words[0].start <= rules.max_seconds


def _break_at(words: list[Word]) -> int:
    """Where to end a cue that cannot take more words: after the last clause end in its second
    half, else after all of them."""
    for index in range(len(words) - 1, len(words) // 2 - 1, -1):
        text = words[index].word.strip()
        if text.endswith(CLAUSE_ENDS) and (not text.endswith(".") or ends_sentence(text)):
            return index + 1
    return len(words)


def build_segments(words: Iterable[Word], keep_words: bool, rules: CueRules = CueRules()) -> tuple[Segment, ...]:
    """Segments (cues) of `words` in time order; see the module rule. Each keeps its words if asked."""
    segments: list[Segment] = []
    current: list[Word] = []

    def close(count: int) -> None:
        taken = current[:count]
        del current[:count]
        text = "".join(w.word for w in taken).strip()
        if text:
            lines = tuple(layout(taken, rules))
            words_kept = tuple(taken) if keep_words else ()
            segments.append(
                Segment(
                    len(segments), taken[0].start, taken[-1].end, text, words_kept, lines=lines,
                    language=taken[0].language,
                )
            )

    for word in words:
        if current:
            pause = word.start - current[-1].end
            sentence_done = ends_sentence(current[-1].word) and (
                current[-1].end - current[0].start >= MIN_SENTENCE_SECONDS or pause >= SENTENCE_PAUSE_SECONDS
            )
            switched = word.language != current[-1].language  # a segment is in one language
            if pause >= PAUSE_SECONDS or sentence_done or switched:
                close(len(current))
            elif not _fits(current + [word], rules):
                close(_break_at(current))
                while current and not _fits(current + [word], rules):
                    close(len(current))
        current.append(word)
    while current:
        close(len(current))
    return tuple(segments)

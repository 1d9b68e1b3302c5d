"""Word times from a cross-attention alignment (as openai-whisper's timing.py), and punctuation
kept with its word."""

from __future__ import annotations

import numpy as np
from faster_whisper.tokenizer import Tokenizer

from batchscribe.engine.backends.base import TOKENS_PER_SECOND
from batchscribe.results import Word


def words_from_alignment(
    tokenizer: Tokenizer,
    text: list[int],
    text_indices: np.ndarray,
    time_indices: np.ndarray,
    token_probabilities: np.ndarray,
) -> list[Word]:
    """Turn a token-level DTW path (text token index, encoder position) into timed words."""
    word_texts, word_tokens = tokenizer.split_to_word_tokens(text + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    starts = jump_times[boundaries[:-1]]
    ends = jump_times[boundaries[1:]]
    spoken = word_texts[:-1]  # the last "word" is the end-of-text token
    return attach_punctuation(
        [
            Word(float(s), float(e), w, float(np.mean(token_probabilities[i:j])) if j > i else 0.0, tuple(t))
            for w, s, e, i, j, t in zip(
                spoken, starts, ends, boundaries[:-1], boundaries[1:], word_tokens[:-1], strict=True
            )
        ]
    )


OPENING = set("\"'“¿([{«")


def attach_punctuation(words: list[Word]) -> list[Word]:
    """Punctuation joins its word, keeping that word's times (as Whisper's own timing does).

    Alignment places a closing "." in the pause after a sentence; left alone it could be
    given to the next file packed into the same window.
    """
    merged: list[Word] = []
    opening = ""
    opening_tokens: tuple[int, ...] = ()
    for word in words:
        text = word.word.strip()
        if text and not any(ch.isalnum() for ch in text):
            if all(ch in OPENING for ch in text):
                opening += word.word
                opening_tokens += word.tokens
                continue
            if merged:
                last = merged[-1]
                merged[-1] = Word(
                    last.start, last.end, last.word + text, min(last.probability, word.probability),
                    last.tokens + word.tokens,
                )  # fmt: skip
                continue
        if opening:
            lead = " " if opening.startswith(" ") or word.word.startswith(" ") else ""
            word = Word(
                word.start, word.end, lead + opening.strip() + word.word.lstrip(), word.probability,
                opening_tokens + word.tokens,
            )  # fmt: skip
            opening, opening_tokens = "", ()
        merged.append(word)
    return merged

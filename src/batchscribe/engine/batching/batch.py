"""Decode a batch of packed windows and give every piece its words, with quality fallbacks.

Packing has one failure mode: Whisper sometimes skips a short piece among others, and the
alignment then stretches the neighbours' words over it. A piece whose word density is
implausibly low is therefore decoded again alone (measured on LibriSpeech: without this
WER rises from 11.7% to 17.4%; also re-decoding its neighbours buys nothing). A window
decoded alone gets Whisper's usual guards: temperature fallback against repetition loops
and the no-speech test against invented words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from typing import Callable

import numpy as np

from batchscribe.audio import SAMPLE_RATE, SpeechPiece
from batchscribe.engine.batching.packing import assign_words
from batchscribe.engine.windows import PieceRef, Window
from batchscribe.engine.backends.base import CONFIDENT_LANGUAGE, DecodedWindow, DecodeOptions, Engine
from batchscribe.errors import BatchscribeError
from batchscribe.results import Word

log = logging.getLogger("batchscribe")
MIN_WORDS_PER_SECOND = 1.0
MIN_REPEATED_WORDS = 3
REPEAT_SIMILARITY = 0.8
# A packed window whose output loops is decoded again piece by piece at this ratio, whatever the
# user's --compression-ratio-threshold (which governs fallback of windows decoded alone).
MAX_COMPRESSION_RATIO = 2.4
DEFAULT_OPTIONS = DecodeOptions()
MIN_UNHEARD_SECONDS = 0.6  # a VAD region this long (0.3 s padding each side included) that got no word
MIN_SWITCH_SECONDS = 2.0  # shorter pieces are too short to tell a change of language by


@dataclass
class Batch:
    """Windows of one language with their features, ready for the model."""

    windows: list[Window]
    features: np.ndarray

    @classmethod
    def prepare(cls, features: Callable[[np.ndarray], np.ndarray], windows: list[Window]) -> "Batch":
        """`features`: an engine's, or the audio thread's own LogMel's while the model loads."""
        return cls(windows, np.stack([features(w.audio()) for w in windows]))


@dataclass(frozen=True)
class PieceText:
    """A piece's words (source times) and the decoding of the window that gave them."""

    words: list[Word]
    decoded: DecodedWindow  # text, avg_logprob, no_speech_prob, compression_ratio, temperature
    start: float  # the piece's span in the source, seconds
    end: float


PieceWords = dict[tuple[int, int], PieceText]  # (file_id, piece index) -> its text


def _text(ref: PieceRef, words: list[Word], decoded: DecodedWindow) -> PieceText:
    return PieceText(words, decoded, ref.piece.start, ref.piece.end)


def transcribe_batch(engine: Engine, batch: Batch, options: DecodeOptions) -> PieceWords:
    """Every piece's text. All windows of a batch share a language and an initial prompt."""
    language = batch.windows[0].language
    options = replace(options, initial_prompt=batch.windows[0].initial_prompt or options.initial_prompt)
    # Pieces its file's language was detected on need no check: one-piece files (most short ones) never do.
    unprobed = any(not ref.piece.language_probed for window in batch.windows for ref in window.pieces)
    options = replace(options, detect_language=options.detect_language and unprobed)
    decoded = engine.decode(batch.features, [w.end for w in batch.windows], language, options)
    options = replace(options, detect_language=False)  # the windows' own check (above) is enough
    result: PieceWords = {}
    alone: list[PieceRef] = []
    for window, output in zip(batch.windows, decoded, strict=True):
        if len(window.pieces) == 1:
            alone_result = _accept_alone(engine, [window], [output], options)
            result.update(alone_result)
            continue
        if output.compression_ratio > MAX_COMPRESSION_RATIO or _needs_fallback(output, options):
            alone.extend(window.pieces)  # each piece decoded alone, with the temperature fallback
            continue
        per_piece = assign_words(window, output.words)
        retry = _sparse(window, per_piece)
        for k, (ref, words) in enumerate(zip(window.pieces, per_piece, strict=True)):
            if k in retry:
                alone.append(ref)
            else:
                result[(ref.file_id, ref.index)] = _text(ref, words, output)
    batch_size = len(batch.windows)
    result.update(_decode_alone(engine, alone, language, options, batch_size))
    kept = {(r.file_id, r.index) for r in alone}
    words = {key: text.words for key, text in result.items()}
    copies = [
        ref for window in batch.windows for ref in _copies(window, words) if (ref.file_id, ref.index) not in kept
    ]
    result.update(_decode_alone(engine, copies, language, options, batch_size))
    switched: dict[str, list[PieceRef]] = {}
    if any(output.detected for output in decoded):
        switched = _other_languages(engine, batch, decoded)
        for other, refs in switched.items():
            for key, text in _decode_alone(engine, refs, other, options, batch_size).items():
                result[key] = replace(text, words=[replace(w, language=other) for w in text.words])
    moved = {(r.file_id, r.index) for refs in switched.values() for r in refs}
    kept_language = [r for window in batch.windows for r in window.pieces if (r.file_id, r.index) not in moved]
    _decode_unheard(engine, kept_language, result, language, options, batch_size)
    for other, refs in switched.items():
        _decode_unheard(engine, refs, result, other, options, batch_size, word_language=other)
    return result


def transcribe_isolating(
    engine: Engine, batch: Batch, options: DecodeOptions, failed_files: frozenset[int] = frozenset()
) -> tuple[PieceWords, dict[int, str]]:
    """transcribe_batch; when the model raises on the batch, each of its pieces again alone, so that
    audio the model cannot decode fails its own file and not the others packed beside it (behind a
    job store they would fail every attempt with it, and end as dead letters).

    Returns the words and, for each file with a piece the model failed on alone, that error; pieces
    of files in `failed_files` (or failing here) are not decoded again. Raises the batch's error when
    pieces of two or more files fail alone and none is decoded: the model, not an input, is failing
    (a missing library), and the run ends with that reason. BatchscribeErrors are raised at once.
    """
    try:
        return transcribe_batch(engine, batch, options), {}
    except BatchscribeError:
        raise
    except Exception as error:
        batch_error = error
    log.warning("the model failed on a batch of %d windows (%s: %s): decoding its pieces again alone",
                len(batch.windows), type(batch_error).__name__, batch_error)  # fmt: skip
    words: PieceWords = {}
    failed: dict[int, str] = {}
    first = batch.windows[0]
    for ref in [ref for window in batch.windows for ref in window.pieces]:
        if ref.file_id in failed or ref.file_id in failed_files:  # that file fails whatever its other pieces give
            continue
        alone = Window(first.language, [PieceRef(ref.file_id, ref.index, ref.piece, 0.0)], first.initial_prompt)
        try:
            words.update(transcribe_batch(engine, Batch.prepare(engine.features, [alone]), options))
        except BatchscribeError:
            raise
        except Exception as error:
            failed[ref.file_id] = f"{type(error).__name__}: {error}"
    if not words and len(failed) >= 2:
        raise batch_error
    return words, failed


def _other_languages(engine: Engine, batch: Batch, decoded: list[DecodedWindow]) -> dict[str, list[PieceRef]]:
    """Pieces spoken in another language than the one they were decoded in, by their language.

    A file's language is detected once, on its first seconds of speech, so a recording that
    goes from French to German would be decoded in French to the end (German comes out as
    invented French). Every decoded window therefore says which language it sounds like (one
    decoder step on the encoding already made); only where that is confidently another language
    is each of its pieces checked alone, and a piece confidently in another language is decoded
    again in it. Two agreeing signals are needed before a piece changes language; the pieces the
    file's language was detected on are never checked (so batches of one-piece files skip the
    step), and a single-language long file pays one decoder step per window and nothing more.
    """
    language = batch.windows[0].language
    found: dict[str, list[PieceRef]] = {}
    for window, output in zip(batch.windows, decoded, strict=True):
        if output.detected is None or output.detected[0] == language or output.detected[1] < CONFIDENT_LANGUAGE:
            continue
        for ref in window.pieces:
            if ref.piece.duration < MIN_SWITCH_SECONDS or ref.piece.language_probed:
                continue
            if len(window.pieces) == 1:
                heard, probability = output.detected  # the window is this piece
            else:
                heard, probability = engine.detect_language([ref.piece])
            if heard != language and probability >= CONFIDENT_LANGUAGE:
                found.setdefault(heard, []).append(ref)
    return found


def _unheard(piece: SpeechPiece, words: list[Word]) -> list[SpeechPiece]:
    """Utterances the VAD found in a piece that got no word although long enough to hold one."""
    missed = []
    for first, last in piece.regions:
        if last - first >= MIN_UNHEARD_SECONDS and not any(first <= (w.start + w.end) / 2 <= last for w in words):
            begin = int(round((first - piece.start) * SAMPLE_RATE))
            missed.append(SpeechPiece(first, piece.audio[begin : int(round((last - piece.start) * SAMPLE_RATE))],
                                      ((first, last),)))  # fmt: skip
    return missed


def _decode_unheard(
    engine: Engine,
    pieces: list[PieceRef],
    result: PieceWords,
    language: str,
    options: DecodeOptions,
    batch_size: int,
    word_language: str | None = None,
) -> None:
    """Decode again, alone, each utterance of a piece that got no word while the rest of it did.

    Whisper sometimes skips one short utterance among many ("no, go, no" came out "no, no") or
    stops before the last ones; the words of the rest are then all laid elsewhere (regions.py),
    and this speech would be lost without a sign. A piece with no word at all is left to the
    no-speech test (silence, noise). `word_language` tags the new words (a piece that changed
    language, see _other_languages)."""
    owners, refs = [], []
    for ref in pieces:
        text = result.get((ref.file_id, ref.index))
        if text is not None and text.words:
            for piece in _unheard(ref.piece, text.words):
                owners.append((ref.file_id, ref.index))
                refs.append(PieceRef(-1 - len(refs), 0, piece))
    if not refs:
        return
    heard = _decode_alone(engine, refs, language, options, batch_size)
    for owner, ref in zip(owners, refs, strict=True):
        extra = heard.get((ref.file_id, 0))
        if extra is not None and extra.words:
            text = result[owner]
            added = [replace(w, language=word_language) for w in extra.words] if word_language else extra.words
            result[owner] = replace(text, words=sorted(text.words + added, key=lambda w: w.start))


def _decode_alone(
    engine: Engine, refs: list[PieceRef], language: str, options: DecodeOptions, batch_size: int
) -> PieceWords:
    result: PieceWords = {}
    for start in range(0, len(refs), batch_size):
        windows = [
            Window(language, [PieceRef(r.file_id, r.index, r.piece, 0.0)], options.initial_prompt)
            for r in refs[start : start + batch_size]
        ]
        single = Batch.prepare(engine.features, windows)
        outputs = engine.decode(single.features, [w.end for w in windows], language, options)
        result.update(_accept_alone(engine, windows, outputs, options))
    return result


def _copies(window: Window, result: dict[tuple[int, int], list[Word]]) -> list[PieceRef]:
    """Pieces of a packed window whose words repeat another piece's.

    Whisper sometimes transcribes only the last piece of a window, and alignment then lays
    those words over the first piece's audio; once the skipped pieces are decoded alone, the
    copy shows. (Seen on LibriSpeech with base: one file given its neighbour's sentence.)
    """
    if len(window.pieces) < 2:
        return []
    texts = [_normalized(result.get((r.file_id, r.index), [])) for r in window.pieces]
    return [
        ref
        for k, ref in enumerate(window.pieces)
        if len(texts[k]) >= MIN_REPEATED_WORDS
        and any(
            j != k and SequenceMatcher(None, texts[k], other).ratio() >= REPEAT_SIMILARITY
            for j, other in enumerate(texts)
        )  # fmt: skip
    ]


def _normalized(words: list[Word]) -> list[str]:
    """The spoken words (punctuation-only ones dropped), lower-cased, letters and digits only."""
    return ["".join(ch for ch in w.word.lower() if ch.isalnum()) for w in words if any(ch.isalnum() for ch in w.word)]


def _sparse(window: Window, per_piece: list[list[Word]]) -> set[int]:
    return {
        k
        for k, (ref, words) in enumerate(zip(window.pieces, per_piece, strict=True))
        if len(_normalized(words)) / max(ref.piece.duration, 0.5) < MIN_WORDS_PER_SECOND
    }


def _needs_fallback(output: DecodedWindow, options: DecodeOptions) -> bool:
    """openai-whisper's tests: a repetition loop, or too little confidence."""
    ratio = options.compression_ratio_threshold
    too_repetitive = ratio is not None and output.compression_ratio > ratio
    too_unsure = options.logprob_threshold is not None and output.avg_logprob < options.logprob_threshold
    return too_repetitive or too_unsure


def _preference(output: DecodedWindow, options: DecodeOptions = DEFAULT_OPTIONS) -> tuple[bool, float]:
    """Among failed attempts, one without a repetition loop beats any with one (a loop is
    often the most confident output), then the most confident wins, as in faster-whisper."""
    threshold = options.compression_ratio_threshold
    return threshold is None or output.compression_ratio <= threshold, output.avg_logprob


def _silent(output: DecodedWindow, options: DecodeOptions) -> bool:
    """openai-whisper's no-speech test: likely silence, and not confidently decoded."""
    if options.no_speech_threshold is None or output.no_speech_prob <= options.no_speech_threshold:
        return False
    return options.logprob_threshold is None or output.avg_logprob < options.logprob_threshold


def _maybe_silent(output: DecodedWindow, options: DecodeOptions) -> bool:
    """A window likely to be silence is not decoded again hotter (that only invents words)."""
    return options.no_speech_threshold is not None and output.no_speech_prob > options.no_speech_threshold


def _accept_alone(
    engine: Engine, windows: list[Window], outputs: list[DecodedWindow], options: DecodeOptions
) -> PieceWords:
    """Apply temperature fallback and the no-speech test to windows holding one piece each."""
    outputs = list(outputs)
    language = windows[0].language
    for temperature in options.temperatures[1:]:
        retry = [i for i, o in enumerate(outputs) if _needs_fallback(o, options) and not _maybe_silent(o, options)]
        if not retry:
            break
        subset = [windows[i] for i in retry]
        features = Batch.prepare(engine.features, subset).features
        hotter = replace(options, temperature=temperature)
        for i, output in zip(retry, engine.decode(features, [w.end for w in subset], language, hotter), strict=True):
            if not _needs_fallback(output, options) or _preference(output, options) > _preference(outputs[i], options):
                outputs[i] = output
    result: PieceWords = {}
    for window, output in zip(windows, outputs, strict=True):
        ref = window.pieces[0]
        words = [] if _silent(output, options) else assign_words(window, output.words)[0]
        result[(ref.file_id, ref.index)] = _text(ref, words, output)
    return result

"""Decode a batch of packed windows and give every piece its words, with quality fallbacks.

Packing has one failure mode: Whisper sometimes skips a short piece among others, and the
alignment then stretches the neighbours' words over it. A piece whose word density is
implausibly low is therefore decoded again alone (measured on LibriSpeech: without this
WER rises from 11.7% to 17.4%; also re-decoding its neighbours buys nothing). A window
decoded alone gets Whisper's usual guards: temperature fallback against repetition loops
and the no-speech test against invented words.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Callable

import numpy as np

from batchscribe.audio import SAMPLE_RATE, SpeechPiece
from batchscribe.engine.packing import PieceRef, Window, assign_words
from batchscribe.engine.decoding import DecodedWindow, DecodeOptions, Engine
from batchscribe.results import Word

MIN_WORDS_PER_SECOND = 1.0
MIN_REPEATED_WORDS = 3
REPEAT_SIMILARITY = 0.8
MAX_COMPRESSION_RATIO = 2.4
MIN_AVG_LOGPROB = -1.0
NO_SPEECH_THRESHOLD = 0.6
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
MIN_UNHEARD_SECONDS = 0.6  # a VAD region this long (0.3 s padding each side included) that got no word


@dataclass
class Batch:
    """Windows of one language with their features, ready for the model."""

    windows: list[Window]
    features: np.ndarray

    @classmethod
    def prepare(cls, features: Callable[[np.ndarray], np.ndarray], windows: list[Window]) -> "Batch":
        """`features`: an engine's, or the audio thread's own LogMel's while the model loads."""
        return cls(windows, np.stack([features(w.audio()) for w in windows]))


PieceWords = dict[tuple[int, int], list[Word]]  # (file_id, piece index) -> words


def transcribe_batch(engine: Engine, batch: Batch, options: DecodeOptions) -> PieceWords:
    language = batch.windows[0].language
    decoded = engine.decode(batch.features, [w.end for w in batch.windows], language, options)
    result: PieceWords = {}
    alone: list[PieceRef] = []
    for window, output in zip(batch.windows, decoded, strict=True):
        if len(window.pieces) == 1:
            alone_result = _accept_alone(engine, [window], [output], options)
            result.update(alone_result)
            continue
        if output.compression_ratio > MAX_COMPRESSION_RATIO:
            alone.extend(window.pieces)
            continue
        per_piece = assign_words(window, output.words)
        retry = _sparse(window, per_piece)
        for k, (ref, words) in enumerate(zip(window.pieces, per_piece, strict=True)):
            if k in retry:
                alone.append(ref)
            else:
                result[(ref.file_id, ref.index)] = words
    batch_size = len(batch.windows)
    result.update(_decode_alone(engine, alone, language, options, batch_size))
    kept = {(r.file_id, r.index) for r in alone}
    copies = [
        ref for window in batch.windows for ref in _copies(window, result) if (ref.file_id, ref.index) not in kept
    ]
    result.update(_decode_alone(engine, copies, language, options, batch_size))
    _decode_unheard(engine, batch.windows, result, language, options, batch_size)
    return result


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
    engine: Engine, windows: list[Window], result: PieceWords, language: str, options: DecodeOptions, batch_size: int
) -> None:
    """Decode again, alone, each utterance of a piece that got no word while the rest of it did.

    Whisper sometimes skips one short utterance among many ("no, go, no" came out "no, no") or
    stops before the last ones; the words of the rest are then all laid elsewhere (engine/regions.py),
    and this speech would be lost without a sign. A piece with no word at all is left to the
    no-speech test (silence, noise)."""
    owners, refs = [], []
    for window in windows:
        for ref in window.pieces:
            words = result.get((ref.file_id, ref.index), [])
            if words:
                for piece in _unheard(ref.piece, words):
                    owners.append((ref.file_id, ref.index))
                    refs.append(PieceRef(-1 - len(refs), 0, piece))
    if not refs:
        return
    heard = _decode_alone(engine, refs, language, options, batch_size)
    for owner, ref in zip(owners, refs, strict=True):
        result[owner] = sorted(result[owner] + heard.get((ref.file_id, 0), []), key=lambda w: w.start)


def _decode_alone(
    engine: Engine, refs: list[PieceRef], language: str, options: DecodeOptions, batch_size: int
) -> PieceWords:
    result: PieceWords = {}
    for start in range(0, len(refs), batch_size):
        windows = [
            Window(language, [PieceRef(r.file_id, r.index, r.piece, 0.0)]) for r in refs[start : start + batch_size]
        ]
        single = Batch.prepare(engine.features, windows)
        outputs = engine.decode(single.features, [w.end for w in windows], language, options)
        result.update(_accept_alone(engine, windows, outputs, options))
    return result


def _copies(window: Window, result: PieceWords) -> list[PieceRef]:
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


def _needs_fallback(output: DecodedWindow) -> bool:
    return output.compression_ratio > MAX_COMPRESSION_RATIO or output.avg_logprob < MIN_AVG_LOGPROB


def _preference(output: DecodedWindow) -> tuple[bool, float]:
    """Among failed attempts, one without a repetition loop beats any with one (a loop is
    often the most confident output), then the most confident wins, as in faster-whisper."""
    return output.compression_ratio <= MAX_COMPRESSION_RATIO, output.avg_logprob


def _accept_alone(
    engine: Engine, windows: list[Window], outputs: list[DecodedWindow], options: DecodeOptions
) -> PieceWords:
    """Apply temperature fallback and the no-speech test to windows holding one piece each."""
    outputs = list(outputs)
    language = windows[0].language
    for temperature in FALLBACK_TEMPERATURES:
        retry = [i for i, o in enumerate(outputs) if _needs_fallback(o) and o.no_speech_prob <= NO_SPEECH_THRESHOLD]
        if not retry:
            break
        subset = [windows[i] for i in retry]
        features = Batch.prepare(engine.features, subset).features
        hotter = DecodeOptions(options.task, options.beam_size, temperature)
        for i, output in zip(retry, engine.decode(features, [w.end for w in subset], language, hotter), strict=True):
            if not _needs_fallback(output) or _preference(output) > _preference(outputs[i]):
                outputs[i] = output
    result: PieceWords = {}
    for window, output in zip(windows, outputs, strict=True):
        silent = output.no_speech_prob > NO_SPEECH_THRESHOLD and output.avg_logprob < MIN_AVG_LOGPROB
        ref = window.pieces[0]
        result[(ref.file_id, ref.index)] = [] if silent else assign_words(window, output.words)[0]
    return result

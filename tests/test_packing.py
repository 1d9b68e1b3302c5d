import numpy as np

from batchscribe.audio import SAMPLE_RATE, SpeechPiece
from batchscribe.engine.batching.packing import WindowPacker, assign_words
from batchscribe.engine.windows import PieceRef
from batchscribe.results import Word


def _piece(start: float, seconds: float) -> SpeechPiece:
    return SpeechPiece(start, np.ones(int(seconds * SAMPLE_RATE), np.float32))


def test_packer_fills_windows_and_never_exceeds_the_limit():
    packer = WindowPacker("en", gap=1.0, limit=29.0)
    windows = []
    for index, seconds in enumerate([10, 12, 5, 20, 3, 8, 27, 1]):
        windows += packer.add(PieceRef(0, index, _piece(0.0, seconds)))
    windows += packer.flush()
    placed = sorted(ref.index for w in windows for ref in w.pieces)
    assert placed == list(range(8))
    assert all(w.end <= 29.0 for w in windows)
    assert len(windows) == 4  # 86 s of speech: 3 windows is the floor, 4 with gaps


def test_window_audio_places_pieces_at_their_offsets():
    packer = WindowPacker("en", gap=1.0)
    packer.add(PieceRef(0, 0, _piece(0.0, 2.0)))
    packer.add(PieceRef(1, 0, _piece(0.0, 2.0)))
    (window,) = packer.flush()
    audio = window.audio()
    assert audio.size == 30 * SAMPLE_RATE
    assert audio[int(2.5 * SAMPLE_RATE)] == 0.0 and audio[int(3.5 * SAMPLE_RATE)] == 1.0


def test_words_go_to_the_piece_they_were_spoken_in_with_source_times():
    packer = WindowPacker("en", gap=1.0)
    packer.add(PieceRef(7, 0, _piece(100.0, 4.0)))  # window 0-4 s, source starts at 100 s
    packer.add(PieceRef(8, 0, _piece(0.5, 3.0)))  # window 5-8 s
    (window,) = packer.flush()
    words = [Word(0.2, 0.8, " a", 1.0), Word(3.7, 4.6, " b", 1.0), Word(4.6, 5.5, " c", 1.0), Word(6.0, 6.4, " d", 1.0)]
    first, second = assign_words(window, words)
    assert [w.word for w in first] == [" a", " b"] and [w.word for w in second] == [" c", " d"]
    assert first[0].start == 100.2 and first[1].end == 104.0  # clipped to its own piece
    assert second[0].start == 0.5 and round(second[1].start, 3) == 1.5


def test_punctuation_joins_its_word_and_keeps_its_times():
    from batchscribe.engine.backends.timing import attach_punctuation

    words = attach_punctuation(
        [
            Word(0, 1, " He", 1),
            Word(1, 1.2, " said", 0.9),
            Word(1.2, 3.0, ",", 0.8),
            Word(3, 3.1, ' "', 1),
            Word(3.1, 4, "Go", 1),
            Word(4, 6, '."', 1),
        ]
    )
    assert [(w.word, w.start, w.end) for w in words] == [(" He", 0, 1), (" said,", 1, 1.2), (' "Go."', 3.1, 4)]


def test_language_detection_lays_a_files_first_pieces_out_as_the_packer_does():
    """One window layout: the probe window (windows.lay_out) puts pieces where the packer would."""
    from batchscribe.engine.backends.base import Engine
    from batchscribe.engine.windows import lay_out

    pieces = [_piece(0.0, seconds) for seconds in (2.0, 3.0, 1.5, 20.0, 4.0)]
    packer = WindowPacker("", open_windows=1)
    packed = [window for index, piece in enumerate(pieces) for window in packer.add(PieceRef(-1, index, piece))]
    laid = lay_out(pieces)
    assert [r.offset for r in laid.pieces] == [0.0, 3.0, 7.0]  # 1 s apart; the 20 s piece does not fit in 29 s
    assert [(r.index, r.offset) for r in packed[0].pieces] == [(r.index, r.offset) for r in laid.pieces]

    class Heard(Engine):  # the shared base's detection, on a backend that only reports what it was given
        def __init__(self):
            self.is_multilingual, self.given = True, []

        def features(self, window_audio):
            return window_audio

        def language_in_window(self, features, content_seconds=30.0):
            self.given.append(content_seconds)
            return "de", 0.9

    engine = Heard()
    assert engine.detect_language(pieces) == ("de", 0.9)
    assert engine.given == [8.5]  # the window's speech ends at 7.0 + 1.5 s
    assert [p.language_probed for p in pieces] == [True, True, True, False, False]

"""The guards that catch Whisper's failure modes in packed and single-piece windows."""

import numpy as np

from batchscribe.audio import SAMPLE_RATE, SpeechPiece
from batchscribe.engine.batching.batch import _copies, _preference
from batchscribe.engine.windows import PieceRef, Window
from batchscribe.engine.backends.base import DecodedWindow
from batchscribe.results import Word


def _words(text: str) -> list[Word]:
    return [Word(float(i), float(i) + 0.5, " " + w, 0.9) for i, w in enumerate(text.split())]


def _window(count: int) -> Window:
    pieces = [PieceRef(n, 0, SpeechPiece(0.0, np.zeros(SAMPLE_RATE, np.float32)), 2.0 * n) for n in range(count)]
    return Window("en", pieces)


def test_a_piece_given_its_neighbours_sentence_is_decoded_again():
    window = _window(3)
    sentence = "Then Moses was afraid and said, surely the thing is known."
    result = {(0, 0): _words(sentence), (1, 0): _words("Hold on, hold fast."), (2, 0): _words(sentence.lower())}
    assert [ref.file_id for ref in _copies(window, result)] == [0, 2]


def test_pieces_that_share_a_few_words_are_left_alone():
    window = _window(2)
    result = {(0, 0): _words("and so he said yes"), (1, 0): _words("and so she went home at last")}
    assert _copies(window, result) == []


def test_a_repetition_loop_loses_to_a_less_confident_clean_decode():
    loop = DecodedWindow([], "But she said " + "—" * 200, avg_logprob=-0.2, no_speech_prob=0.0)
    clean = DecodedWindow([], "But she said, whomsoever thou seest awake.", avg_logprob=-1.3, no_speech_prob=0.0)
    assert _preference(clean) > _preference(loop)


def test_a_short_window_cannot_loop_for_the_whole_decoder_context():
    from batchscribe.engine.backends.base import MAX_TOKENS, new_token_limit

    assert new_token_limit(29.0) == MAX_TOKENS // 2  # Whisper's own sample length
    assert new_token_limit(3.0) < 80
    assert new_token_limit(3.0) >= 3 * 8 + 16  # still room for very fast speech


def test_after_any_prompt_ctranslate2_may_generate_up_to_the_limit_and_never_past_the_context():
    """CTranslate2 generates min(max_length / 2, max_length - prompt + 1) tokens (whisper.cc): the
    limit must survive a long --initial-prompt, and max_length must stay within the decoder's 448."""
    from batchscribe.engine.backends.base import MAX_TOKENS, new_token_limit
    from batchscribe.engine.backends.whisper_ct2 import generation_length

    for seconds in (0.5, 3.0, 14.0, 29.0):
        limit = new_token_limit(seconds)
        for prompt in range(2, MAX_TOKENS // 2 + 5):  # up to <|startofprev|>, 223 tokens, the start sequence
            length = generation_length(limit, prompt)
            generated = min(length // 2, length - prompt + 1)
            assert length <= MAX_TOKENS
            assert generated >= min(limit, MAX_TOKENS - prompt + 1), (seconds, prompt, length)

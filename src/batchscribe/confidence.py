"""What a transcript cannot vouch for: its language, when it was never measured or is doubtful.

An English-only model never measures the language: it writes any speech as English (German comes
out as English-sounding gibberish). A multilingual model measures it only on speech: a silent
file has no language at all. Such a transcript says so (`language_probability: null`, and a
`warnings` entry when something is likely wrong) instead of claiming certainty.

Under an English-only model, speech in another language shows as words the model itself doubts.
Measured with tiny.en on ../shared/data (mean word probability, files of 8 words or more):
125 English files (LibriSpeech test-other, LibriVox, CMU Arctic, 8 kHz telephony, long-form,
meetings) score 0.60 and up, none flagged; 30 of 31 German, French, Spanish, Italian,
Portuguese and Swedish files score 0.21-0.54 and are flagged below NOT_ENGLISH_MEAN_PROBABILITY.
"""

from __future__ import annotations

from typing import Optional, Sequence

from batchscribe.results import Word

NOT_ENGLISH_MEAN_PROBABILITY = 0.55
MIN_WORDS_TO_JUDGE = 8
UNCERTAIN_LANGUAGE = 0.5  # a detected language below this probability is named as a guess


def language_warnings(
    words: Sequence[Word], language: Optional[str], probability: Optional[float], multilingual: bool
) -> tuple[str, ...]:
    """Warnings for one file's transcript (empty when its language can be trusted as far as known).

    `probability` is None when the language was not measured (given by --language, an
    English-only model, or no speech to measure it on)."""
    spoken = [w for w in words if any(ch.isalnum() for ch in w.word)]
    if not spoken:
        return ("no speech found: the language was not detected",) if multilingual and probability is None else ()
    warnings = []
    if not multilingual and len(spoken) >= MIN_WORDS_TO_JUDGE:
        mean = sum(w.probability for w in spoken) / len(spoken)
        if mean < NOT_ENGLISH_MEAN_PROBABILITY:
            warnings.append(
                f"the speech is probably not English (mean word probability {mean:.2f} over {len(spoken)} words, "
                f"English scores above {NOT_ENGLISH_MEAN_PROBABILITY}): this English-only model writes any "
                "language as English; use a multilingual model such as --model base"
            )
    if multilingual and probability is not None and probability < UNCERTAIN_LANGUAGE:
        warnings.append(
            f"the language is uncertain ({language} with probability {probability:.2f}); give --language if you know it"
        )
    return tuple(warnings)

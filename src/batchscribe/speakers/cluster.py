"""Group one file's speaker embeddings into speakers (SciPy's agglomerative clustering).

Average linkage on cosine distance. The count, when not given, is where the merging stops:
groups of windows further apart than SAME_SPEAKER_DISTANCE (on average) are different voices.
A threshold, unlike a silhouette score, also says when a file has one voice, and does not
penalise a speaker who says a single short sentence (a one-window group scores zero there: the
three-speaker test file came out as two by silhouette, three by the threshold).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from batchscribe.errors import OptionsError

# Average cosine distance below which two groups are taken as one voice. Measured with the
# Resemblyzer encoder on ~2 s windows: one voice's windows all merge below 0.33 (LJSpeech, 231 s;
# a LibriSpeech utterance 0.31), and below 0.41 in the multi-speaker files (0.403 in the
# 6-speaker file, 0.409 in the two-speaker one); different voices stay apart above 0.44 (0.443:
# the closest two of the six readers; 0.466 in the three-speaker file, 0.481 in the two-speaker).
SAME_SPEAKER_DISTANCE = 0.425
DEFAULT_MAX_SPEAKERS = 10


@dataclass(frozen=True)
class SpeakerCount:
    """What the user said about how many people speak in each file (None: estimate)."""

    num: Optional[int] = None
    min: int = 1
    max: int = DEFAULT_MAX_SPEAKERS

    def __post_init__(self):
        if self.num is not None and self.num < 1:
            raise OptionsError("--num-speakers must be at least 1")
        if self.min < 1 or self.max < self.min:
            raise OptionsError(f"--min-speakers {self.min} / --max-speakers {self.max}: need 1 <= min <= max")


def cluster_speakers(embeddings: np.ndarray, count: SpeakerCount = SpeakerCount()) -> np.ndarray:
    """Speaker index (0, 1, ...) per row of `embeddings` (n, dim), numbered by first appearance.

    A count larger than the rows allow is capped at one speaker per embedding window (a window
    is about 2 s of speech): a file cannot show more voices than it has windows.
    """
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, int)
    if count.num is not None:
        speakers = min(count.num, n)
    else:
        speakers = _estimate(embeddings, count.min, min(count.max, n))
    if speakers <= 1:
        return np.zeros(n, int)
    labels = _agglomerate(embeddings, speakers)
    return _by_first_appearance(labels)


def _tree(embeddings: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage

    return linkage(embeddings, method="average", metric="cosine")


def _agglomerate(embeddings: np.ndarray, speakers: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster

    return fcluster(_tree(embeddings), t=speakers, criterion="maxclust")


def _estimate(embeddings: np.ndarray, low: int, high: int) -> int:
    from scipy.cluster.hierarchy import fcluster

    if len(embeddings) < 2:
        return 1
    found = len(set(fcluster(_tree(embeddings), t=SAME_SPEAKER_DISTANCE, criterion="distance")))
    return max(low, min(high, found))


def _by_first_appearance(labels: np.ndarray) -> np.ndarray:
    order: dict[int, int] = {}
    for label in labels:
        order.setdefault(int(label), len(order))
    return np.array([order[int(label)] for label in labels])

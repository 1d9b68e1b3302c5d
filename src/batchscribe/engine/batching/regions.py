"""Lay a piece's words on the speech regions the VAD found in it, each word with a length.

Cross-attention alignment is a good guide to where a word was said, but it drifts over a run of
short utterances ("yes ... yes ... yes" with a quarter second between them): seen on 22 one-word
commands in one 27 s piece, it put no word on one command and two on each of its neighbours.
The VAD knows where each utterance is. So words are assigned to regions in order (dynamic
programming over word x region): the cost is how far a word moves, plus REGION_LEFT_EMPTY for
every region that gets no word; a word then lies inside its region. Last, every word gets at
least MIN_WORD_SECONDS (one alignment step), in time order, without overlapping its neighbours:
alignment and clipping gave 18 of 777 words start == end.
"""

from __future__ import annotations

from dataclasses import replace

from batchscribe.results import Word

MIN_WORD_SECONDS = 0.02  # one alignment step (50 per second)
REGION_LEFT_EMPTY = 1.0  # seconds of moving a word worth paying to give an utterance a word
MAX_DP_CELLS = 200_000  # words x regions beyond which regions are matched one word at a time


def place_words(words: list[Word], regions: tuple[tuple[float, float], ...], lo: float, hi: float) -> list[Word]:
    """`words` (source times, in order) laid on `regions` inside [lo, hi], each with a length."""
    if not words:
        return []
    if regions and len(words) * len(regions) <= MAX_DP_CELLS:
        words = [_inside(w, regions[r]) for w, r in zip(words, _assign(words, regions), strict=True)]
    return spread(words, lo, hi)


def _distance(word: Word, region: tuple[float, float]) -> float:
    middle = (word.start + word.end) / 2
    return max(region[0] - middle, middle - region[1], 0.0)


def _assign(words: list[Word], regions: tuple[tuple[float, float], ...]) -> list[int]:
    """The region index of each word: non-decreasing, least moving plus empty regions."""
    count = len(regions)
    cost = [_distance(words[0], r) + REGION_LEFT_EMPTY * j for j, r in enumerate(regions)]
    back: list[list[int]] = []
    for word in words[1:]:
        best, best_from = [0.0] * count, [0] * count
        running, running_from = float("inf"), 0  # min over k <= j of cost[k] - penalty * k
        for j, region in enumerate(regions):
            # staying in region j costs nothing extra; coming from k < j leaves j-k-1 regions empty
            candidate = cost[j - 1] + REGION_LEFT_EMPTY * (1 - j) if j else float("inf")
            if candidate < running:
                running, running_from = candidate, j - 1
            stay = cost[j]
            if stay <= running + REGION_LEFT_EMPTY * (j - 1):
                best[j], best_from[j] = stay, j
            else:
                best[j], best_from[j] = running + REGION_LEFT_EMPTY * (j - 1), running_from
            best[j] += _distance(word, region)
        cost = best
        back.append(best_from)
    last = min(range(count), key=lambda j: cost[j] + REGION_LEFT_EMPTY * (count - 1 - j))
    path = [last]
    for step in reversed(back):
        path.append(step[path[-1]])
    return path[::-1]


def _inside(word: Word, region: tuple[float, float]) -> Word:
    """`word` clipped to `region` (alignment lets a word run on into the pause after it); a word
    wholly outside moves to the edge nearest where it was, keeping its length if the region allows."""
    first, last = region
    start, end = max(word.start, first), min(word.end, last)
    length = min(max(word.end - word.start, MIN_WORD_SECONDS), last - first)
    if start >= last:
        start = last - length
    elif end <= first:
        end = first + length
    return replace(word, start=start, end=end)


def spread(words: list[Word], lo: float, hi: float) -> list[Word]:
    """Words in time order inside [lo, hi], none overlapping the next, each MIN_WORD_SECONDS long at
    least (or an equal share of [lo, hi] when it is too short for that)."""
    count = len(words)
    if hi - lo < count * MIN_WORD_SECONDS:
        step = max(hi - lo, 0.001 * count) / count
        return [replace(w, start=lo + k * step, end=lo + (k + 1) * step) for k, w in enumerate(words)]
    placed = []
    floor = lo
    for k, word in enumerate(words):
        after = count - k - 1  # words still to fit after this one
        start = min(max(word.start, floor), hi - (after + 1) * MIN_WORD_SECONDS)
        end = min(max(word.end, start + MIN_WORD_SECONDS), hi - after * MIN_WORD_SECONDS)
        placed.append(replace(word, start=start, end=end))
        floor = end
    return placed

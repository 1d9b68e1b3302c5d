"""Batched beam search (and sampling, for the temperature fallback) over the step decoder
(torch_decoder.py) and its cache, for every window of a batch at once.

It also keeps, for every hypothesis, the alignment heads' cross-attention queries at each step,
so that word times need no second pass of the decoder over the chosen text (see whisper_torch.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from batchscribe.engine.backends.torch_decoder import DecoderCache

Step = Callable[[torch.Tensor, torch.Tensor, DecoderCache], tuple[torch.Tensor, torch.Tensor]]
"""(tokens, encoded, cache) -> (bf16/fp16 logits of the last position, alignment-head queries)."""


@dataclass
class Hypothesis:
    tokens: list[int]
    token_logprobs: list[float]
    queries: torch.Tensor  # (len(tokens) + 1, alignment heads, head size): each fed position's query

    @property
    def logprob(self) -> float:
        return sum(self.token_logprobs)

    @property
    def score(self) -> float:
        """Mean log-probability per token, end-of-text included (faster-whisper's avg_logprob)."""
        return self.logprob / (len(self.tokens) + 1)


@dataclass(frozen=True)
class SearchSettings:
    width: int  # beams per window; 1 when sampling
    temperature: float  # 0: beam search
    limit: int  # most tokens per window
    eot: int
    suppress: torch.Tensor  # token ids never produced
    suppress_first: torch.Tensor  # and those not produced first (blank, end of text)


def log_normalizer(logits: torch.Tensor) -> torch.Tensor:
    """Each row's logsumexp, as max + log(sum(exp(x - max))): several times faster on a CPU than
    torch.logsumexp or a full log_softmax over a 52k vocabulary, and only the chosen tokens'
    log-probabilities are needed."""
    peak = logits.max(-1, keepdim=True).values
    return peak[:, 0] + (logits - peak).exp_().sum(-1).log_()


def search(
    step: Step, prompt_logits: torch.Tensor, prompt_queries: torch.Tensor, cache: DecoderCache,
    encoded: torch.Tensor, settings: SearchSettings,
) -> list[Hypothesis]:  # fmt: skip
    """The best hypothesis of every window, given the logits and queries at the prompt's last
    position (the cache then holds the prompt, one row per window)."""
    width, eot = settings.width, settings.eot
    windows = prompt_logits.shape[0]
    logits = prompt_logits.float().index_fill_(1, settings.suppress_first, -torch.inf)
    tokens, logprobs = _choose(logits, width, settings.temperature)
    cache.repeat_rows(width)  # the encoder's rows stay one per window
    queries = prompt_queries.repeat_interleave(width, 0)  # (rows, 1, heads, size)
    beams = [
        [Hypothesis([t], [p], queries[w * width]) for t, p in zip(tokens[w], logprobs[w], strict=True)]
        for w in range(windows)
    ]
    finished: list[list[Hypothesis]] = [[] for _ in range(windows)]
    active = list(range(windows))
    for _ in range(1, settings.limit):
        last = torch.tensor([[h.tokens[-1]] for w in active for h in beams[w]], device=encoded.device)
        logits, step_queries = step(last, encoded, cache)
        queries = torch.cat([queries, step_queries], dim=1)
        logits = logits.float().index_fill_(1, settings.suppress, -torch.inf)
        tokens, logprobs = _choose(logits, 2 * width if width > 1 else 1, settings.temperature)
        rows, still = [], []
        for position, w in enumerate(active):
            sums = [h.logprob for h in beams[w]]
            candidates = sorted(
                (
                    (sums[beam] + p, beam, t, p)
                    for beam in range(width)
                    for t, p in zip(tokens[position * width + beam], logprobs[position * width + beam], strict=True)
                ),
                reverse=True,
            )
            kept = []
            for _, beam, token, logprob in candidates:
                parent = beams[w][beam]
                row = position * width + beam
                if token == eot:
                    finished[w].append(Hypothesis(parent.tokens, parent.token_logprobs + [logprob], queries[row]))
                else:
                    kept.append(Hypothesis(parent.tokens + [token], parent.token_logprobs + [logprob], queries[row]))
                    rows.append(row)
                if len(kept) == width:
                    break
            if len(finished[w]) < width:
                beams[w] = kept
                still.append(w)
            else:
                del rows[len(rows) - len(kept) :]
        if not still:
            break
        order = torch.tensor(rows, device=encoded.device)
        cache.reorder(order)
        queries = queries.index_select(0, order)
        if len(still) < len(active):
            kept_windows = torch.tensor([active.index(w) for w in still], device=encoded.device)
            cache.keep_windows(kept_windows)
        active = still
    for w in active:  # out of room: the live beams compete with what has ended
        finished[w].extend(beams[w])
    best = [max(f, key=lambda h: h.score) for f in finished]
    for hypothesis in best:  # a query per fed position: the prompt's last, then each text token
        missing = len(hypothesis.tokens) + 1 - len(hypothesis.queries)  # 1 if it ran out of room
        if missing > 0:
            hypothesis.queries = torch.cat([hypothesis.queries] + [hypothesis.queries[-1:]] * missing)
    return best


def _choose(logits: torch.Tensor, count: int, temperature: float) -> tuple[list[list[int]], list[list[float]]]:
    """The `count` most likely next tokens of every row (or one sampled at `temperature`), with
    their log-probabilities."""
    normalizer = log_normalizer(logits)
    if temperature > 0:
        tokens = torch.multinomial((logits / temperature).softmax(-1), 1)
        values = logits.gather(1, tokens)
    else:
        values, tokens = logits.topk(count)
    return tokens.tolist(), (values - normalizer[:, None]).tolist()

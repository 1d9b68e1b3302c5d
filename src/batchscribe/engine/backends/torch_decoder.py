"""Whisper's decoder on transformers' weights, run one step at a time for batched beam search.

transformers' decoder module does the same arithmetic, but on a CPU its Python (cache objects,
attention dispatch, hooks) and its unpacked bf16 weights cost more than the arithmetic: decoding
tiny.en on 2 cores spent a quarter of its time in the interpreter, and each step re-packed the
51,864 x 384 output projection for the matrix units (8.6 ms of a 40-row step, 3.6 ms prepacked;
bench/results/speed-ab/levers.md, lever 7). Here the weights are packed once (oneDNN, CPU and bf16
only), the keys and values of past tokens sit in buffers that grow by doubling, and the beams of
a window read its encoder keys and values once, as the query positions of one attention call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PackedLinear:
    """y = x W^T + b, the weight packed once for oneDNN's bf16 matrix kernels on a CPU (unpacked
    on other devices and dtypes, where F.linear is already fast)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, pack: bool):
        self.bias = bias
        self.out_features = weight.shape[0]
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, 64) if pack else None
        self.weight = None if pack else weight  # the packed copy replaces it

    def __call__(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        """y, or gelu(y) (the exact, erf form) when `gelu`."""
        if self.packed is None:
            y = F.linear(x, self.weight, self.bias)
            return F.gelu(y) if gelu else y
        flat = x.reshape(-1, x.shape[-1])
        if gelu:
            y = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.bias, "gelu", [], "none")
        else:
            y = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.bias, "none", [], "")
        return y.view(*x.shape[:-1], self.out_features)


def can_pack(device: torch.device, dtype: torch.dtype) -> bool:
    """oneDNN packs bf16 weights only on CPUs with bf16 support (a forced --compute-type bfloat16
    elsewhere runs unpacked)."""
    return (
        device.type == "cpu"
        and dtype == torch.bfloat16
        and torch.backends.mkldnn.is_available()
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


class DecoderCache:
    """Keys and values per decoder layer: of the encoder output (one row per window, shared by
    its beams) and of the tokens fed so far (one row per hypothesis)."""

    def __init__(self) -> None:
        self.cross: list[tuple[torch.Tensor, torch.Tensor]] = []  # (windows, heads, frames, head size)
        self.past: list[tuple[torch.Tensor, torch.Tensor]] = []  # (rows, heads, capacity, head size)
        self.length = 0  # positions held in `past`

    def repeat_rows(self, width: int) -> None:
        """Each window's row becomes `width` rows (its beams); the encoder's rows stay shared."""
        self.past = [(k.repeat_interleave(width, 0), v.repeat_interleave(width, 0)) for k, v in self.past]

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the past of these rows, in this order (the beams a step kept, and their parents)."""
        n = self.length
        self.past = [(_take(k, rows, n), _take(v, rows, n)) for k, v in self.past]

    def keep_windows(self, windows: torch.Tensor) -> None:
        """Drop the encoder rows of windows whose search has ended."""
        self.cross = [(k.index_select(0, windows), v.index_select(0, windows)) for k, v in self.cross]


def _take(buffer: torch.Tensor, rows: torch.Tensor, length: int) -> torch.Tensor:
    taken = buffer.new_empty((len(rows), *buffer.shape[1:]))
    taken[:, :, :length] = buffer[:, :, :length].index_select(0, rows)
    return taken


class _LayerNorm:
    def __init__(self, state: dict[str, torch.Tensor], name: str):
        self.weight, self.bias = state[f"{name}.weight"], state[f"{name}.bias"]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias)


class _Layer:
    """One decoder block, from transformers' names under `name` (model.decoder.layers.N)."""

    def __init__(self, state: dict[str, torch.Tensor], name: str, heads: int, pack: bool):
        def linear(part: str, scale: float = 1.0) -> PackedLinear:
            weight, bias = state[f"{name}.{part}.weight"], state.get(f"{name}.{part}.bias")
            if scale != 1.0:
                weight, bias = weight * scale, None if bias is None else bias * scale
            return PackedLinear(weight, bias, pack)

        self.heads = heads
        self.norm1 = _LayerNorm(state, f"{name}.self_attn_layer_norm")
        self.norm2 = _LayerNorm(state, f"{name}.encoder_attn_layer_norm")
        self.norm3 = _LayerNorm(state, f"{name}.final_layer_norm")
        # Queries are scaled by head_size ** -0.5 in their weights (as transformers scales them), so
        # attention runs with scale 1 and the alignment heads' queries come out scaled.
        scale = (state[f"{name}.self_attn.q_proj.weight"].shape[0] // heads) ** -0.5
        q, k, v = (f"{name}.self_attn.{p}_proj" for p in "qkv")
        self.qkv = PackedLinear(
            torch.cat([state[f"{q}.weight"] * scale, state[f"{k}.weight"], state[f"{v}.weight"]]),
            torch.cat([state[f"{q}.bias"] * scale, torch.zeros_like(state[f"{q}.bias"]), state[f"{v}.bias"]]),
            pack,
        )
        self.out = linear("self_attn.out_proj")
        self.cross_query = linear("encoder_attn.q_proj", scale)
        # once per window, on (windows, 1500, width): unpacked is as fast
        self.cross_key = PackedLinear(state[f"{name}.encoder_attn.k_proj.weight"], None, False)
        self.cross_value = PackedLinear(
            state[f"{name}.encoder_attn.v_proj.weight"], state[f"{name}.encoder_attn.v_proj.bias"], False
        )
        self.cross_out = linear("encoder_attn.out_proj")
        self.fc1, self.fc2 = linear("fc1"), linear("fc2")


class Decoder:
    """Whisper's decoder for step-by-step search: `decoder(tokens, encoded, cache)` feeds tokens
    (rows, positions) after those already in `cache` and returns the final hidden states
    (rows, positions, width) and the alignment heads' cross-attention queries, scaled as
    attention scales them: (rows, positions, len(alignment_heads), head size), float32.

    Rows are hypotheses; `encoded` (windows, frames, width) has one row per window, and rows is
    windows x beams once the cache's rows are repeated. Prompts are fed in one call with the cache
    empty; search steps then feed one position each.
    """

    def __init__(self, state: dict[str, torch.Tensor], heads: int, alignment_heads: list[tuple[int, int]]):
        """`state`: transformers' Whisper parameters (model.decoder.*, proj_out.weight when not tied
        to the token embeddings), on the device and in the dtype to run in."""
        self.embed = state["model.decoder.embed_tokens.weight"]
        self.positions = state["model.decoder.embed_positions.weight"]
        pack = can_pack(self.embed.device, self.embed.dtype)
        count = sum(1 for name in state if name.startswith("model.decoder.layers.") and name.endswith(".fc1.weight"))
        self.layers = [_Layer(state, f"model.decoder.layers.{i}", heads, pack) for i in range(count)]
        self.norm = _LayerNorm(state, "model.decoder.layer_norm")
        self.logits = PackedLinear(state.get("proj_out.weight", self.embed), None, pack)
        self.alignment_heads = alignment_heads
        self._aligned_layers = {layer for layer, _ in alignment_heads}

    def __call__(
        self, tokens: torch.Tensor, encoded: torch.Tensor, cache: DecoderCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows, count = tokens.shape
        start = cache.length
        x = self.embed[tokens] + self.positions[start : start + count]
        if not cache.cross:
            # contiguous: attention reads them at every step, and strided reads cost it 2x
            cache.cross = [
                (
                    self._split(layer.cross_key(encoded), layer.heads).contiguous(),
                    self._split(layer.cross_value(encoded), layer.heads).contiguous(),
                )
                for layer in self.layers
            ]
        if not cache.past:
            cache.past = [(None, None)] * len(self.layers)  # type: ignore[list-item]
        queries: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.layers):
            x = x + self._self_attention(layer, index, layer.norm1(x), cache, start)
            query = self._split(layer.cross_query(layer.norm2(x)), layer.heads)  # (rows, heads, count, size)
            if index in self._aligned_layers:
                queries[index] = query
            keys, values = cache.cross[index]
            windows = keys.shape[0]
            if windows == rows:
                attended = F.scaled_dot_product_attention(query, keys, values, scale=1.0)
            else:  # the beams of a window are the query positions of one call on its encoder rows
                width = rows // windows
                shared = query.view(windows, width, layer.heads, count, -1).transpose(1, 2)
                attended = F.scaled_dot_product_attention(
                    shared.reshape(windows, layer.heads, width * count, -1), keys, values, scale=1.0
                )
                attended = attended.view(windows, layer.heads, width, count, -1).transpose(1, 2)
                attended = attended.reshape(rows, layer.heads, count, -1)
            x = x + layer.cross_out(self._merge(attended))
            x = x + layer.fc2(layer.fc1(layer.norm3(x), gelu=True))
        cache.length = start + count
        aligned = torch.stack(
            [queries[layer][:, head] for layer, head in self.alignment_heads], dim=2
        )  # (rows, count, alignment heads, size)
        return self.norm(x), aligned.float()

    def _self_attention(
        self, layer: _Layer, index: int, x: torch.Tensor, cache: DecoderCache, start: int
    ) -> torch.Tensor:
        rows, count, size = x.shape
        q, k, v = self._split(layer.qkv(x), 3 * layer.heads).split(layer.heads, dim=1)
        keys, values = cache.past[index]
        end = start + count
        if keys is None or keys.shape[2] < end:
            capacity = max(2 * end, 64)
            grown_k = k.new_empty((rows, layer.heads, capacity, k.shape[-1]))
            grown_v = v.new_empty((rows, layer.heads, capacity, v.shape[-1]))
            if keys is not None:
                grown_k[:, :, :start] = keys[:, :, :start]
                grown_v[:, :, :start] = values[:, :, :start]
            keys, values = grown_k, grown_v
            cache.past[index] = (keys, values)
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        mask = None
        if count > 1:  # a prompt: each position sees itself and those before it
            mask = torch.ones(count, end, dtype=torch.bool, device=x.device).tril(start)
        attended = F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], attn_mask=mask, scale=1.0)
        return layer.out(self._merge(attended))

    @staticmethod
    def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
        """(rows, positions, heads x size) -> (rows, heads, positions, size)"""
        rows, count, width = x.shape
        return x.view(rows, count, heads, width // heads).transpose(1, 2)

    @staticmethod
    def _merge(x: torch.Tensor) -> torch.Tensor:
        """(rows, heads, positions, size) -> (rows, positions, heads x size)"""
        rows, heads, count, size = x.shape
        return x.transpose(1, 2).reshape(rows, count, heads * size)

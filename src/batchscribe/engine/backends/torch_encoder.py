"""Whisper's audio encoder in PyTorch with bfloat16 on CPUs with AMX (or AVX-512 BF16).

CTranslate2's int8 kernels leave a Sapphire Rapids-class CPU's matrix units idle; PyTorch's
bf16 path uses them and encodes a 30 s window about 3x faster here. The encoder output is then
handed to CTranslate2, which decodes and aligns as before (its generate() and align() accept
encoded features), so everything above the engine is unchanged. Weights come straight from the
CTranslate2 model.bin: no second copy of the model is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from batchscribe.engine.models.ct2_weights import read_weights


class Float32Conv(torch.nn.Module):
    """The encoder's first convolution, in float32 whatever the rest runs in (bf16, fp16, autocast).

    It reads the raw log-mel: in bf16 its rounding alone costs accuracy (tiny.en, 513 s LibriSpeech
    long-form: WER 12.2% in bf16, 11.7% in fp32) for 1.5% of the encoder's work. Both PyTorch
    encoders use it: TorchEncoder below, which serves both backends.
    """

    def __init__(self, conv: torch.nn.Conv1d, out_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.conv = conv.float()
        self.out_dtype = out_dtype

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        with torch.autocast(mel.device.type, enabled=False):
            return self.conv(mel.float()).to(self.out_dtype)


class TorchEncoder:
    """conv1 -> GELU -> conv2 (stride 2) -> GELU -> + positions -> pre-LN transformer blocks -> LN."""

    def __init__(self, weights: dict[str, np.ndarray], device: str | torch.device = "cpu"):
        # copied: the arrays may be views into the whole loaded file (safetensors, model.bin), which
        # sharing them would keep alive (+120 MiB peak RSS for tiny.en on the PyTorch backend)
        self.tensors = {name.removeprefix("encoder/"): torch.from_numpy(np.array(value)).to(device)
                        for name, value in weights.items()}  # fmt: skip
        self.heads = int(self.tensors.pop("num_heads"))
        self.layers = sum(1 for name in self.tensors if name.endswith("self_attention/linear_0/weight"))
        weight = self.tensors["conv1/weight"]
        conv1 = torch.nn.Conv1d(weight.shape[1], weight.shape[0], weight.shape[2], padding=1, device=device)
        conv1.requires_grad_(False)
        conv1.weight.copy_(weight)
        conv1.bias.copy_(self.tensors["conv1/bias"])
        self.conv1 = Float32Conv(conv1)

    def _p(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self._p(f"{name}/gamma"), self._p(f"{name}/beta"))

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self._p(f"{name}/weight"), self._p(f"{name}/bias"))

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(mel))  # in float32 (see Float32Conv)
        x = F.gelu(F.conv1d(x, self._p("conv2/weight"), self._p("conv2/bias"), stride=2, padding=1))
        x = x.transpose(1, 2)
        x = x + self._p("position_encodings/encodings")[: x.shape[1]]
        batch, length, width = x.shape
        for i in range(self.layers):
            layer = f"layer_{i}"
            h = self._linear(self._norm(x, f"{layer}/self_attention/layer_norm"), f"{layer}/self_attention/linear_0")
            q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in h.chunk(3, dim=-1))
            attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width)
            x = x + self._linear(attended, f"{layer}/self_attention/linear_1")
            h = F.gelu(self._linear(self._norm(x, f"{layer}/ffn/layer_norm"), f"{layer}/ffn/linear_0"))
            x = x + self._linear(h, f"{layer}/ffn/linear_1")
        return self._norm(x, "layer_norm")


class Bf16Encoder:
    """Encodes batches of log-mel windows in bf16; each calling thread uses `threads` cores."""

    def __init__(self, model_path: Path, threads: int):
        self.module = TorchEncoder(read_weights(model_path / "model.bin", "encoder/"))
        torch.set_num_threads(threads)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            encoded = self.module(torch.from_numpy(features))
        return encoded.float().numpy()

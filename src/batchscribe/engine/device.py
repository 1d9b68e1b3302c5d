"""Pick where and in which precision to run: cuda+float16 when a GPU is visible, else cpu+int8."""

from __future__ import annotations

import os
from dataclasses import dataclass

# CTranslate2's packed int8 GEMM is ~5% faster on x86 CPUs (same results); users may override.
os.environ.setdefault("CT2_USE_EXPERIMENTAL_PACKED_GEMM", "1")

import ctranslate2  # noqa: E402  (must see the setting above)

from batchscribe.errors import OptionsError


@dataclass(frozen=True)
class Placement:
    """Where the model runs; `workers` batches run at once, each on `threads` threads.
    `encoder` is "ct2" or "torch-bf16" (PyTorch's bf16 encoder feeding CTranslate2's decoder)."""

    device: str
    compute_type: str
    threads: int
    workers: int
    encoder: str = "ct2"


ENCODERS = ("auto", "ct2", "torch")


def _torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def cpu_has_bf16_matrix_units() -> bool:
    """True on CPUs where PyTorch's bf16 matmuls beat CTranslate2's int8 (AMX, or AVX-512 BF16)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_encoder(device: str, encoder: str = "auto") -> str:
    """auto: PyTorch bf16 on a CPU with AMX/AVX-512 BF16 when torch is installed, else CTranslate2."""
    if encoder not in ENCODERS:
        raise OptionsError(f"unknown encoder '{encoder}'; choose {', '.join(ENCODERS)}")
    if encoder == "ct2" or (encoder == "auto" and device != "cpu"):
        return "ct2"
    if device != "cpu":
        raise OptionsError("--encoder torch runs on the CPU only for now; use --encoder ct2 on a GPU")
    if encoder == "auto":
        return "torch-bf16" if _torch_installed() and cpu_has_bf16_matrix_units() else "ct2"
    if not _torch_installed():
        raise OptionsError("--encoder torch needs PyTorch: pip install 'batchscribe[torch]'")
    return "torch-bf16"


def _split_cores(cores: int) -> tuple[int, int]:
    """(workers, threads each). Decoding is many small ops: on few cores, independent
    single-threaded workers beat one worker whose threads mostly wait on each other."""
    per_worker = 1 if cores <= 2 else 2 if cores <= 8 else 4
    return max(1, cores // per_worker), per_worker


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_placement(
    device: str = "auto", compute_type: str = "auto", threads: int = 0, encoder: str = "auto"
) -> Placement:
    gpus = ctranslate2.get_cuda_device_count()
    if device == "auto":
        device = "cuda" if gpus > 0 else "cpu"
    elif device == "cuda" and gpus == 0:
        raise OptionsError("--device cuda was requested but no CUDA GPU is visible; use --device cpu or auto")
    elif device not in ("cpu", "cuda"):
        raise OptionsError(f"unknown device '{device}'; choose auto, cpu or cuda")
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    supported = ctranslate2.get_supported_compute_types(device)
    if compute_type not in supported:
        raise OptionsError(
            f"compute type '{compute_type}' is not supported on {device}; supported: {', '.join(sorted(supported))}"
        )
    if device == "cuda":
        # Two batches in flight keep the GPU busy while the CPU prepares the next one.
        return Placement(device, compute_type, threads=threads or 1, workers=2, encoder=choose_encoder(device, encoder))
    workers, per_worker = _split_cores(threads or available_cores())
    return Placement(device, compute_type, per_worker, workers, choose_encoder(device, encoder))

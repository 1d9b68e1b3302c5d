"""Pick the backend, where and in which precision to run.

CTranslate2 (the default): cuda+float16 when a GPU is visible, else cpu+int8, with PyTorch's bf16
encoder on CPUs with AMX. PyTorch (`--backend torch`): bf16 on such CPUs, float32 on others,
float16 on CUDA.

Why auto picks CTranslate2 on CPUs (measured on a 2-core Sapphire Rapids-class Xeon with AMX,
tiny.en, whole command; bench/results/issue18-s5): the PyTorch backend, with its own decoder and
no transformers import, is level with CTranslate2 on long recordings and behind on short jobs,
which wait for `import torch` (1.8 s) before the first batch while the CTranslate2 backend's quick
start skips it. Whisper's decoder is a few hundred small steps per window, bound by memory and
per-call overhead rather than by the matrix units; the encoder, one large matrix product per
window, is where AMX pays, and the CTranslate2 backend already uses PyTorch's there.

On CUDA auto keeps CTranslate2 (faster-whisper's choice) where it can run, and takes PyTorch where
it cannot: CTranslate2 4.x is built for CUDA 12 and loads its cuBLAS only at the first batch, so on a
CUDA 13 machine (seen on an H200 with PyTorch 2.11+cu130, bench/results/gpu-h200) every batch failed
with "libcublas.so.12 is not found". So the two backends have not been timed side by side on a GPU;
PyTorch's, with the model loaded, ran tiny.en at RTFx 177 (60 short files) and 273 (513 s file) there.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, replace
from typing import Iterable, Optional

# CTranslate2's packed int8 GEMM is ~5% faster on x86 CPUs (same results); users may override.
os.environ.setdefault("CT2_USE_EXPERIMENTAL_PACKED_GEMM", "1")

import ctranslate2  # noqa: E402  (must see the setting above)

from batchscribe.errors import OptionsError
from batchscribe.options import BACKENDS, ENCODERS  # noqa: F401 (with the options: the CLI loads no engine)


@dataclass(frozen=True)
class Placement:
    """Where the model runs; `workers` batches run at once, each on `threads` threads.
    `backend` is "ct2" or "torch"; with ct2, `encoder` is "ct2" or "torch-bf16" (PyTorch's bf16
    encoder feeding CTranslate2's decoder); with torch, everything runs in PyTorch."""

    device: str
    compute_type: str
    threads: int
    workers: int
    encoder: str = "ct2"
    backend: str = "ct2"


# Windows per model call, measured with the model loaded (tiny.en, 2 cores, 60 short files and the
# 513 s file): CTranslate2 7.2 s / 7.0 s at 4 and 7.7 s / 7.1 s at 8; PyTorch 8.7 s / 8.1 s at 4,
# 8.2 s / 7.4 s at 8 and 11.8 s / 11.4 s at 16. PyTorch reads each weight once per step for the
# whole batch and drops a window as soon as it ends, so it gains from more windows at once.
BEST_BATCH_SIZE = {"ct2": 4, "torch": 8}
# On a GPU a decoding step costs about the same for 16 windows as for 32, so fewer, fuller batches
# win, up to a point (tiny.en on an H200, model loaded, 60 short files / the 513 s file: 3.05 / 2.16 s
# at 16, 2.53 / 1.88 s at 32, 2.75 / 2.38 s at 64; bench/results/gpu-h200).
BEST_CUDA_BATCH_SIZE = 32
TORCH_COMPUTE_TYPES = ("bfloat16", "float16", "float32")


def _torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _torch_backend_missing() -> list[str]:
    import importlib.util

    return [m for m in ("torch", "safetensors", "dtw") if importlib.util.find_spec(m) is None]


def _torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# CTranslate2 4.x's CUDA build opens CUDA 12's cuBLAS when the first batch runs, not at load.
CT2_CUBLAS = "libcublas.so.12"


def ct2_cuda_ready() -> bool:
    """True when CTranslate2 sees a GPU and can open the cuBLAS it was built against."""
    if ctranslate2.get_cuda_device_count() == 0:
        return False
    if not sys.platform.startswith("linux"):
        return True  # its DLL names differ; the first batch tells
    try:
        ctypes.CDLL(CT2_CUBLAS)
    except OSError:
        return False
    return True


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as info:
            return set(next((line for line in info if line.startswith("flags")), "").split())
    except OSError:
        return set()


def cpu_has_bf16_matrix_units() -> bool:
    """True on CPUs where PyTorch's bf16 matmuls beat CTranslate2's int8 (AMX, or AVX-512 BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & _cpu_flags())


def cpu_has_amx() -> bool:
    """True on CPUs with AMX bf16 tiles (Intel Sapphire Rapids and later), where auto picks PyTorch's encoder."""
    return "amx_bf16" in _cpu_flags()


def choose_encoder(device: str, encoder: str = "auto") -> str:
    """auto: PyTorch bf16 on a CPU with AMX when torch is installed, else CTranslate2.

    AVX-512 BF16 alone (AMD EPYC) is not enough: there PyTorch's bf16 encoder ran no faster than
    CTranslate2's int8 one (tiny.en, 513 s file, RTFx 51 against 52, whole command) while importing
    PyTorch added 1.2-1.4 s of model load (issue 18). `--encoder torch` still uses it there."""
    if encoder not in ENCODERS:
        raise OptionsError(f"unknown encoder '{encoder}'; choose {', '.join(ENCODERS)}")
    if encoder == "ct2" or (encoder == "auto" and device != "cpu"):
        return "ct2"
    if device != "cpu":
        raise OptionsError("--encoder torch runs on the CPU only for now; use --encoder ct2 on a GPU")
    if encoder == "auto":
        return "torch-bf16" if _torch_installed() and cpu_has_amx() else "ct2"
    if not _torch_installed():
        raise OptionsError("--encoder torch needs PyTorch: pip install 'batchscribe[torch]'")
    return "torch-bf16"


# A single run (`batchscribe transcribe`) of tiny.en with less audio than this keeps CTranslate2's
# encoder where auto would take PyTorch's: importing PyTorch costs about 1.2 s of CPU before the first
# batch, more than its faster encoder saves on so little audio (see quick_start).
QUICK_START_SECONDS = 120.0
QUICK_START_MODELS = frozenset({"tiny.en"})
# Reading a file's header costs about 3.5 ms, on the way to the first batch: a run of more files than
# this keeps auto's choice unprobed (120 s in 16 files or more is a run of very short files).
QUICK_START_MAX_FILES = 16


def quick_start(
    placement: Placement, encoder: str, model: str, durations: Iterable[Optional[float]], files: Optional[int] = None
) -> Placement:
    """`placement` with CTranslate2's encoder when `encoder` is auto, auto chose PyTorch's, `model`
    is one of QUICK_START_MODELS, and the run's files (`durations`, seconds each, None when a file
    does not say) are at most QUICK_START_MAX_FILES and hold less than QUICK_START_SECONDS in all;
    otherwise `placement` unchanged. Stops reading `durations` as soon as the answer is known, so a
    large run probes only its first files, and none when `files` (their number) is known to be too many.

    Measured on the AMX Xeon (tiny.en, whole command, 2 threads, CPU seconds PyTorch's / CTranslate2's
    encoder): 1 file of 15 s 2.8 / 1.6, 8 files (59 s) 4.5 / 3.8, 16 files (120 s) 6.9 / 6.5, 30 files
    (222 s) 11.4 / 12.2; the command to the first batch on the model 1.95 s / 0.75 s. With base the
    int8 encoder costs more than the import from the first file on (8 files: 8.5 / 15.2 CPU s), so base
    keeps PyTorch's. A worker that keeps its model for many runs never takes this path."""
    if encoder != "auto" or placement.encoder != "torch-bf16" or model not in QUICK_START_MODELS:
        return placement
    if files is not None and files > QUICK_START_MAX_FILES:
        return placement
    total = 0.0
    for count, seconds in enumerate(durations, 1):
        if seconds is None or count > QUICK_START_MAX_FILES:
            return placement
        total += seconds
        if total >= QUICK_START_SECONDS:
            return placement
    return replace(placement, encoder="ct2")


def _require_torch_backend() -> None:
    missing = _torch_backend_missing()
    if missing:
        raise OptionsError(f"--backend torch needs {', '.join(missing)}: pip install 'batchscribe[torch]'")


def _gpu_backend(backend: str) -> tuple[str | None, str]:
    """(the backend that runs on the GPU here, or None; and if None, why not). For `auto`,
    CTranslate2 where it can run, else PyTorch (see this module's docstring)."""
    if backend in ("auto", "ct2") and ct2_cuda_ready():
        return "ct2", ""
    torch_usable = not _torch_backend_missing()
    if backend in ("auto", "torch") and torch_usable and _torch_sees_cuda():
        return "torch", ""
    if not ctranslate2.get_cuda_device_count():
        return None, "no CUDA GPU is visible; use --device cpu or auto"
    if backend == "torch":
        return None, (
            "this PyTorch is a CPU build: for --backend torch on the GPU install a CUDA build of torch, "
            "or use --backend ct2"
        )
    return None, (
        f"CTranslate2 sees a GPU but cannot open {CT2_CUBLAS}: its CUDA build needs CUDA 12's cuBLAS and "
        "cuDNN 9 (pip install nvidia-cublas-cu12 nvidia-cudnn-cu12, with their lib folders on "
        "LD_LIBRARY_PATH), or run --backend torch with a CUDA build of PyTorch"
    )


def _torch_compute_type(device: str, compute_type: str) -> str:
    if compute_type == "auto":
        if device == "cuda":
            return "float16"
        return "bfloat16" if cpu_has_bf16_matrix_units() else "float32"
    if compute_type not in TORCH_COMPUTE_TYPES:
        raise OptionsError(
            f"compute type '{compute_type}' is not one the PyTorch backend runs; "
            f"choose {', '.join(TORCH_COMPUTE_TYPES)}"
        )
    if compute_type == "float16" and device == "cpu":
        raise OptionsError("float16 is for GPUs; on a CPU use bfloat16 (AMX / AVX-512 BF16 CPUs) or float32")
    return compute_type


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
    device: str = "auto", compute_type: str = "auto", threads: int = 0, encoder: str = "auto", backend: str = "auto"
) -> Placement:
    if device not in ("auto", "cpu", "cuda"):
        raise OptionsError(f"unknown device '{device}'; choose auto, cpu or cuda")
    if backend not in BACKENDS:
        raise OptionsError(f"unknown backend '{backend}'; choose {', '.join(BACKENDS)}")
    if backend == "torch":
        _require_torch_backend()
    if device == "auto" and not ctranslate2.get_cuda_device_count():
        device = "cpu"
    if device != "cpu":  # the GPU when the backend asked for (or, for auto, either) can use it
        on_gpu, problem = _gpu_backend(backend)
        if on_gpu is None and device == "cuda":
            raise OptionsError(problem)
        device = "cuda" if on_gpu else "cpu"
        backend = on_gpu or backend
    if backend == "auto":
        backend = "ct2"
    if backend == "torch":
        if encoder == "ct2":
            raise OptionsError("--encoder ct2 is for --backend ct2; the PyTorch backend runs its own encoder")
        compute_type = _torch_compute_type(device, compute_type)
        chosen_encoder = "torch"
    else:
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        supported = ctranslate2.get_supported_compute_types(device)
        if compute_type not in supported:
            raise OptionsError(
                f"compute type '{compute_type}' is not supported on {device}; "
                f"supported: {', '.join(sorted(supported))}"
            )
        chosen_encoder = choose_encoder(device, encoder)
    if device == "cuda":
        # Two batches in flight keep the GPU busy while the CPU prepares the next one.
        return Placement(device, compute_type, threads or 1, 2, chosen_encoder, backend)
    workers, per_worker = _split_cores(threads or available_cores())
    return Placement(device, compute_type, per_worker, workers, chosen_encoder, backend)


def best_batch_size(placement: Placement) -> int:
    """Windows per model call when the user names none (see BEST_BATCH_SIZE)."""
    if placement.device == "cuda" and placement.backend == "torch":
        return BEST_CUDA_BATCH_SIZE
    return BEST_BATCH_SIZE[placement.backend]

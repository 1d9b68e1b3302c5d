import ctranslate2
import pytest

from batchscribe.engine import placement as device
from batchscribe.engine.placement import _split_cores, best_batch_size, choose_placement
from batchscribe.errors import OptionsError


def test_cpu_defaults_to_int8_with_all_cores_used():
    if ctranslate2.get_cuda_device_count():
        pytest.skip("a GPU is visible: auto picks cuda")
    placement = choose_placement()
    assert (placement.device, placement.compute_type) == ("cpu", "int8")
    assert placement.workers >= 1 and placement.threads >= 1


def test_cores_are_split_into_parallel_workers():
    assert _split_cores(1) == (1, 1)
    assert _split_cores(2) == (2, 1)
    assert _split_cores(8) == (4, 2)
    assert _split_cores(16) == (4, 4)


def test_impossible_requests_say_what_to_do():
    if not ctranslate2.get_cuda_device_count():
        with pytest.raises(OptionsError, match="no CUDA GPU is visible; use --device cpu"):
            choose_placement(device="cuda")
    with pytest.raises(OptionsError, match="not supported on cpu; supported: .*int8"):
        choose_placement(device="cpu", compute_type="float8")


@pytest.fixture
def gpu_without_cuda12(monkeypatch):
    """A machine like the H200 this was seen on: CTranslate2 sees the GPU, CUDA 13 has no cuBLAS 12."""
    monkeypatch.setattr(device.ctranslate2, "get_cuda_device_count", lambda: 1)
    monkeypatch.setattr(device.ctranslate2, "get_supported_compute_types", lambda _: {"float16", "int8", "float32"})
    monkeypatch.setattr(device, "CT2_CUBLAS", "libcublas.so.99-not-installed")
    monkeypatch.setattr(device, "_torch_sees_cuda", lambda: True)
    return monkeypatch


def test_auto_runs_pytorch_on_a_gpu_ctranslate2_cannot_use(gpu_without_cuda12):
    assert not device.ct2_cuda_ready()
    placement = choose_placement()
    assert (placement.device, placement.backend, placement.compute_type) == ("cuda", "torch", "float16")
    assert best_batch_size(placement) == device.BEST_CUDA_BATCH_SIZE
    with pytest.raises(OptionsError, match="cannot open libcublas.so.99-not-installed.*--backend torch"):
        choose_placement(device="cuda", backend="ct2")


def test_without_a_usable_gpu_auto_stays_on_the_cpu(gpu_without_cuda12):
    gpu_without_cuda12.setattr(device, "_torch_sees_cuda", lambda: False)
    placement = choose_placement()
    assert (placement.device, placement.backend) == ("cpu", "ct2")
    with pytest.raises(OptionsError, match="cannot open libcublas"):
        choose_placement(device="cuda")
    with pytest.raises(OptionsError, match="this PyTorch is a CPU build"):
        choose_placement(device="cuda", backend="torch")


def test_batch_size_defaults_are_per_backend_and_device():
    assert best_batch_size(choose_placement(device="cpu")) == device.BEST_BATCH_SIZE["ct2"]
    assert best_batch_size(choose_placement(device="cpu", backend="torch")) == device.BEST_BATCH_SIZE["torch"]

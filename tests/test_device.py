import ctranslate2
import pytest

from batchscribe.engine.device import _split_cores, choose_placement
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

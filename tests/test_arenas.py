"""Threads allocate from at most MALLOC_ARENAS malloc arenas once the cap is set (batchscribe/arenas.py):
what keeps a long file's peak memory from growing with its length. (Memory itself is measured by
`python -m bench memory`, never asserted here.)"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's"
)

# Eight threads alive at once, each allocating from malloc, then glibc's own report of its arenas.
ARENAS_IN_USE = """
import ctypes, sys, threading
from batchscribe.arenas import limit_malloc_arenas
applied = limit_malloc_arenas() if sys.argv[1] == "capped" else False
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes, libc.fclose.argtypes = (ctypes.c_int, ctypes.c_void_p), (ctypes.c_void_p,)
together = threading.Barrier(8)
def allocate():
    libc.malloc(4096)
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
report = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, report)
libc.fclose(report)
print(applied)
"""


def arenas_in_use(how: str, tmp_path: Path) -> tuple[int, str]:
    report = tmp_path / f"{how}.xml"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run([sys.executable, "-c", ARENAS_IN_USE, how, str(report)], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return report.read_text().count("<heap nr="), done.stdout.strip()


def test_threads_share_the_capped_arenas(tmp_path):
    from batchscribe.arenas import MALLOC_ARENAS

    free, _ = arenas_in_use("free", tmp_path)
    capped, applied = arenas_in_use("capped", tmp_path)
    assert applied == "True"
    assert free > MALLOC_ARENAS + 1, f"eight threads made only {free} arenas without the cap: the test shows nothing"
    assert capped <= MALLOC_ARENAS, f"{capped} arenas with the cap of {MALLOC_ARENAS}"


def test_the_users_malloc_arena_max_wins(monkeypatch):
    from batchscribe.arenas import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False

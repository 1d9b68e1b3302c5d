"""How many malloc arenas the process keeps: what set a long file's peak memory.

glibc's malloc gives each thread that allocates an arena of its own, up to 8 per core. A batch on
the model takes a few hundred MiB for a moment (encoder activations, beam search, word alignment:
about 340 MiB for 4 windows of tiny.en) and gives it back, but an arena keeps much of what it was
given, and batches run on whichever model worker, reader or PyTorch thread is free, each with its
own arena. The process's peak grew with the length of the file: 1466 MiB for a 1-hour file and
1545 MiB for a 3-hour one (tiny.en, 2 cores, `python -m bench memory`), while the memory actually
in use never passed about 870 MiB (measured with every allocation over 1 MiB given back at once,
MALLOC_MMAP_THRESHOLD_=1048576, which costs 40% more CPU time in page faults). One arena for all
threads keeps the memory a batch gave back for the next batch, whichever thread runs it, at no
measured cost in CPU time; transcripts do not change. Figures: bench/results/memory/.
"""

from __future__ import annotations

import ctypes
import os
import sys

MALLOC_ARENAS = 1
M_ARENA_MAX = -8  # mallopt's parameter number (glibc malloc.h)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc malloc's arenas at `arenas` for threads that allocate from now on (arenas already
    made stay). True when applied; False off glibc, or when the user set MALLOC_ARENA_MAX (theirs
    wins: glibc read it at start)."""
    if sys.platform != "linux" or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to ask, or one without mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_ARENA_MAX, arenas) == 1  # musl has mallopt too, and answers 0: not applied

"""Independent chunks of work on single-threaded worker threads.

torch parallelises each CPU operation over its intra-op threads, and every parallel
region ends at a barrier. An op made of many moderate operations opens many regions; when
other processes compete for the cores, a region waits at its barrier for a thread the
operating system has descheduled, often a whole time slice, and the op's time collapses
(seconds instead of milliseconds). Work that splits into independent chunks (samples,
blocks of outputs) runs better the other way round: :func:`run` hands the chunks to as
many Python threads as torch has intra-op threads, each running torch on one thread (torch
releases the GIL inside its kernels) and taking the next chunk when it is done. No thread
waits for another until the end, so under load the op slows down in proportion to the CPU
it gets. Results come back in chunk order, so anything summed over chunks is summed in a
fixed order: the result does not depend on the schedule.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_lock = threading.Lock()
_started = [0]  # worker threads set up so far in this process


def _one_torch_thread():
    """Worker initialiser: torch on one thread in this thread. ``get_num_threads`` runs
    torch's lazy per-thread set-up now, while the process-wide default says 1."""
    torch.set_num_threads(1)
    torch.get_num_threads()
    with _lock:
        _started[0] += 1


def _pool(workers: int) -> ThreadPoolExecutor:
    key = (os.getpid(), workers)  # a forked child builds pools of its own
    with _lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(workers, thread_name_prefix="crossconv-native",
                                             initializer=_one_torch_thread)
        return _pools[key]


def run(work, chunks, device) -> list:
    """``[work(*chunk) for chunk in chunks]``; see :func:`results`."""
    return list(results(work, chunks, device))


def results(work, chunks, device):
    """``work(*chunk)`` for every chunk, yielded in chunk order as they complete, on worker
    threads when that helps: CPU tensors, several torch threads and at least as many
    chunks. Otherwise (a GPU, one thread, too few chunks to share) in this thread, with
    torch's own parallelism. Consuming results as they come lets their memory go early."""
    chunks = list(chunks)
    threads = torch.get_num_threads()
    if torch.device(device).type != "cpu" or threads < 2 or len(chunks) < threads:
        for chunk in chunks:
            yield work(*chunk)
        return

    def task(chunk):
        with torch.no_grad():  # grad mode is per thread; the caller's thread runs without
            return work(*chunk)

    started = _started[0]
    try:
        yield from _pool(threads).map(task, chunks)
    finally:
        if _started[0] != started:  # new workers set the process default to 1: restore it
            torch.set_num_threads(threads)

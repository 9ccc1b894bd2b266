"""Array helpers of the preparation passes: big arrays on ordinary pages (:func:`empty`),
read-only contiguous views that give the compiled passes one numba type (:func:`frozen`), and
the block size of the vectorised passes (``PASS_ROWS``) with the one check they share
(:func:`repeats`).
"""

from __future__ import annotations

import ctypes
import functools
import mmap

import numpy as np

# Rows a vectorised pass over the bars takes at a time: its temporaries stay in cache, and
# small beside a 10M-bar run's arrays (a whole-column temporary is 10-80 MB there).
PASS_ROWS = 1 << 16


# From this size on, numpy asks the kernel for transparent huge pages (numpy's own threshold).
_HUGE_BYTES = 1 << 22


def empty(shape: int | tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """``np.empty(shape, dtype)`` for the replay's big arrays, on ordinary pages. numpy has the
    kernel back arrays of 4 MiB and more with transparent huge pages, and on a busy machine
    with fragmented memory the kernel compacts memory to find them on first touch: filling
    880 MB measured 1.2-10 s of wall time that way, against 0.5-0.6 s on ordinary pages. The
    advice is taken back before the array is touched; the memory itself is malloc's, which
    hands a run the pages an earlier run freed (below its 32 MiB ceiling): a fresh mapping's
    first touch cost a 250 k-bar run ~6 ms of page faults."""
    out = np.empty(shape, dtype=dtype)
    if out.nbytes >= _HUGE_BYTES:
        _ordinary_pages(out)
    return out


def _ordinary_pages(array: np.ndarray) -> None:
    """Undo numpy's huge-page advice on ``array``'s whole pages (Linux; elsewhere numpy gives
    none)."""
    advice = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if advice is None:
        return
    start = -array.ctypes.data % mmap.PAGESIZE  # the first page boundary, as numpy advises
    _libc().madvise(ctypes.c_void_p(array.ctypes.data + start), array.nbytes - start, advice)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Read-only contiguous views of ``arrays``: the compiled passes see one numba type for
    each (arrays from polars are read-only, numpy's are not)."""
    out = []
    for a in arrays:
        view = np.ascontiguousarray(a).view()
        view.flags.writeable = False
        out.append(view)
    return tuple(out)


def repeats(values: np.ndarray, width: int) -> bool:
    """True when ``values`` is its first ``width`` values over and over (``width`` divides its
    length)."""
    grid = values.reshape(-1, width)
    step = max(1, PASS_ROWS // width)
    return all((grid[r : r + step] == grid[0]).all() for r in range(0, grid.shape[0], step))

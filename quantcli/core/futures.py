"""Results of futures in the order they were submitted, for loops that yield as they go."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def in_order(futures: Sequence[Future[T]]) -> Iterator[T]:
    """Each of ``futures``' results in order, as it is due. When the loop ends early (a result
    raised, or the consumer stopped), the futures not yet started are cancelled, so no work is
    done that nobody reads."""
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()

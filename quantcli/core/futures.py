"""Futures: results in the order they were submitted, and work done now in the shape of a future."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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


def completed(fn: Callable[..., T], *args: object) -> Future[T]:
    """The future of ``fn(*args)``, done in this thread: its result or its error, read from it
    as from a submitted one (so the order in which errors are raised is the same)."""
    done: Future[T] = Future()
    try:
        done.set_result(fn(*args))
    except Exception as exc:
        done.set_exception(exc)
    return done

"""Running test code in several threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(n: int, target: Callable[[int], object]) -> None:
    """Run ``target(i)`` for i in range(n), each in its own thread; re-raise the first error any raised.

    (A thread's exception is otherwise only printed, and the test would go on.)
    """
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as e:  # reported to the caller below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]

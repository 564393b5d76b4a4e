"""progress() must not keep an item alive while the next is made: the Fisher step streams gradient chunks
through it, and the memory plan counts one chunk at a time."""

import collections
import sys
import weakref

import pytest

from unlearn_repro.progress import progress


class _Item:
    pass


def _source(n, previous_alive):
    ref = None
    for _ in range(n):
        previous_alive.append(ref is not None and ref() is not None)
        item = _Item()
        ref = weakref.ref(item)
        yield item
        del item


@pytest.mark.parametrize("tty", [False, True])
def test_progress_drops_each_item_before_making_the_next(tty, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    previous_alive = []
    collections.deque(
        progress(_source(4, previous_alive), 4, "test", every_s=0), maxlen=0
    )  # consumer keeps none
    assert previous_alive == [False] * 4

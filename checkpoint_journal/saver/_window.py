"""The items of one namespace a read has read so far, and how it reads more."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from checkpoint_journal._core.items import Item

Ranged = Callable[[str, str], Iterable[list[Item]]]
"""Pages of the namespace's items with sort keys in [lo, hi], newest first."""


class Window:
    """The items of one namespace read so far (newest first) and the pages still to read.

    ``complete``: when the pages run out, every item of the namespace has been read (a
    read bounded above by ``before`` or a checkpoint id is not). ``ranged`` and ``floor``
    (the namespace's lowest sort key) let a read that knows how far down it must go read
    exactly that range next (``more(down_to=...)``) instead of a page of unknown reach."""

    def __init__(
        self, pages: Iterable[list[Item]], *, complete: bool, items: Iterable[Item] = (),
        exhausted: bool = False, ranged: Ranged | None = None, floor: str = "",
    ) -> None:
        self.items: list[Item] = []
        self._sks: set[str] = set()
        self._pages: Iterator[list[Item]] = iter(pages)
        self.complete = complete
        self.exhausted = exhausted
        self._ranged = ranged
        self._floor = floor
        self._lowest: str | None = None
        self._add(items)

    @classmethod
    def of(cls, items: Iterable[Item]) -> Window:
        """A namespace read whole already."""
        return cls((), complete=True, items=items, exhausted=True)

    @property
    def whole(self) -> bool:
        return self.exhausted and self.complete

    def _add(self, items: Iterable[Item]) -> None:
        for item in items:  # a bounded read may meet an item its seed already holds
            sk = item["SK"]["S"]
            if sk not in self._sks:
                self._sks.add(sk)
                self.items.append(item)
                if self._lowest is None or sk < self._lowest:
                    self._lowest = sk

    def more(self, *, down_to: str | None = None) -> bool:
        """Read the next page, or with ``down_to`` every item from that sort key up to
        what was read (one Query, paged only past 1 MB); False (and no request) once the
        pages have run out."""
        ranged, lowest = self._ranged, self._lowest
        if (down_to is not None and ranged is not None and lowest is not None
                and self._floor <= down_to < lowest and not self.exhausted):
            for got in ranged(down_to, lowest):
                self._add(got)
            self._lowest = down_to  # read from there up, whatever it held
            # What is left below: read lazily, only if asked for.
            self._pages = iter(ranged(self._floor, down_to))
            return True
        page = next(self._pages, None)
        if page is None:
            self.exhausted = True
            return False
        self._add(page)
        return True

    def rest(self) -> None:
        while self.more():
            pass

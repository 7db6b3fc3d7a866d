"""Messages that list objects: grouped by cause, each with a count and the first few names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

SHOWN = 5  # names shown per group; the rest is a count


def some_names(names: Iterable[str], shown: int = SHOWN) -> str:
    """`a, b, c and 497 more`: the first few names, then how many were left out."""
    unique = list(dict.fromkeys(names))
    head = ", ".join(unique[:shown])
    left = len(unique) - shown
    return f"{head} and {left} more" if left > 0 else head


@dataclass
class Note:
    """One cause: the JSON path it concerns (with `[*]` for "every"), what happens, and where."""

    path: str
    effect: str
    noun: str  # what `names` are, plural: "users", "identity providers"
    names: list[str] = field(default_factory=list)

    def message(self) -> str:
        where = f" ({len(self.names)} {self.noun}: {some_names(self.names)})" if self.names else ""
        return f"{self.path}{where}: {self.effect}"


class Notebook:
    """Notes keyed by cause, so a thousand users with one dropped attribute make one note."""

    def __init__(self) -> None:
        self._notes: dict[tuple[str, str], Note] = {}

    def add(self, path: str, effect: str, *, noun: str = "", name: str | None = None) -> None:
        note = self._notes.setdefault((path, effect), Note(path, effect, noun))
        if name is not None:
            note.names.append(name)

    def messages(self) -> list[str]:
        return [note.message() for note in self._notes.values()]

    def __bool__(self) -> bool:
        return bool(self._notes)

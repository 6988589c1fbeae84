"""The bundled sample catalog (a small bookshop, ``apps/data/catalog.json``).

Prices live here and only here: the services quote them from the catalog, never from a model's
text.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "of",
        "in",
        "on",
        "to",
        "for",
        "with",
        "by",
        "at",
        "from",
        "is",
        "are",
        "be",
        "i",
        "want",
        "would",
        "like",
        "me",
        "my",
        "some",
        "any",
        "please",
        "book",
        "books",
        "novel",
        "novels",
        "buy",
        "order",
        "get",
    ]
)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[str]:
    """Lower-case, accent-free words of ``text``."""
    return _WORD.findall(_fold(text))


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    author: str
    genre: str
    kind: str
    price: float
    currency: str
    description: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Item:
        return cls(
            id=str(d["id"]),
            title=str(d["title"]),
            author=str(d.get("author") or d.get("brand") or ""),
            genre=str(d.get("genre", "")),
            kind=str(d.get("kind", "")),
            price=float(d["price"]),
            currency=str(d.get("currency", "EUR")),
            description=str(d.get("description", "")),
        )

    @property
    def price_text(self) -> str:
        return f"{self.price:.2f} {self.currency}"

    def embedding_text(self) -> str:
        """What the item's embedding is computed from."""
        return f"{self.title} by {self.author}. {self.genre} {self.kind}. {self.description}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "author": self.author,
            "genre": self.genre,
            "kind": self.kind,
            "price": self.price,
            "currency": self.currency,
            "description": self.description,
        }


class Catalog:
    """Items by id, with keyword search and title matching."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.items: tuple[Item, ...] = tuple(items)
        self._by_id = {i.id: i for i in self.items}
        if len(self._by_id) != len(self.items):
            raise ValueError("catalog ids must be unique")

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def get(self, item_id: str) -> Item:
        """The item ``item_id``. Raises KeyError."""
        return self._by_id[item_id]

    def search(self, query: str, *, limit: int = 5, genre: str | None = None) -> list[Item]:
        """Items whose title, author, genre or description share words with ``query``, best first."""
        wanted = [w for w in words(query) if w not in _STOP]
        scored = []
        for item in self.items:
            if genre and _fold(genre) not in _fold(item.genre):
                continue
            title, rest = set(words(item.title + " " + item.author)), set(words(item.embedding_text()))
            score = sum(3 if w in title else 1 if w in rest else 0 for w in wanted)
            if score or not wanted:
                scored.append((score, item))
        scored.sort(key=lambda pair: -pair[0])
        return [item for _, item in scored[:limit]]

    def find_title(self, text: str, *, cutoff: float = 0.8) -> Item | None:
        """The item whose title ``text`` names (contains it, or is close to it), if any."""
        folded = " ".join(words(text))
        if not folded:
            return None
        best: tuple[float, Item] | None = None
        for item in self.items:
            title = " ".join(words(item.title))
            if len(title) >= 4 and re.search(rf"\b{re.escape(title)}\b", folded):
                score = 1.0 + len(title) / 1000  # the longest contained title wins
            else:
                score = difflib.SequenceMatcher(None, folded, title).ratio()
            if best is None or score > best[0]:
                best = (score, item)
        return best[1] if best is not None and best[0] >= cutoff else None


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The bundled sample catalog, or the JSON file at ``path`` (``{"items": [...]}``)."""
    if path is None:
        text = resources.files("llmos.apps").joinpath("data/catalog.json").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text)
    return Catalog(Item.from_json(d) for d in data["items"])

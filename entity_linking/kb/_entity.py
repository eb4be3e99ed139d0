"""`Entity`: one entity of a knowledge base, what every source reader yields (`_sources`) and the
knowledge base stores (`_kb`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Entity:
    """One entity of the knowledge base."""

    id: str
    """Stable identifier (a Wikidata QID, a URI, or the world's id)."""
    name: str
    """Canonical name; always matched as an alias too."""
    aliases: list[str] = field(default_factory=list)
    """Other names the entity goes by (the name is not repeated here)."""
    type: str = ""
    """Coarse type ("person", "city", ...); its words count as context for disambiguation."""
    description: str = ""
    """Short description; its words near a mention count as context for disambiguation."""
    prior: float = 0.0
    """Popularity prior (any non-negative scale: mention counts, page views, sitelinks)."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "aliases": self.aliases, "type": self.type,
                "description": self.description, "prior": self.prior}

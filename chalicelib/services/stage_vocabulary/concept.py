"""What one entry of the vocabulary is: a concept, the status it votes for, and its stems."""

from __future__ import annotations

from dataclasses import dataclass

NEW, IN_PROGRESS, CLOSED = "NEW", "IN_PROGRESS", "CLOSED"
STRONG, WEAK = 2, 1


@dataclass(frozen=True)
class Concept:
    name: str
    status: str | None  # what the concept says about the lead; None for a modifier with no vote
    strength: int  # STRONG decides on its own; WEAK only leans (position may confirm it)
    stems: tuple[str, ...]
    negated: str | None = None  # the status when the word is negated ("не реализовано"); None: ignored
    pending: bool = False  # an unfinished step: "waiting for", "check": keeps won/paid in progress
    outcome: str = ""  # "won" / "lost" for a CLOSED concept, shown in the reason


def stems(table: str) -> tuple[str, ...]:
    """One line per language: its code, then the stems."""
    return tuple(stem for line in table.strip().splitlines() for stem in line.split()[1:])

"""Word stems per concept and language for naming amoCRM/Kommo pipeline stages.

Each concept lists stems (word beginnings) per language: ru, uk, en, es, pt, tr, id. A stem is
written as people type it; stage_names folds it exactly as it folds a stage name (case, accents,
Cyrillic/Latin look-alikes), so "negociação", "negociacao" and "NEGOCIAÇÃO" share the stem "negocia".

The concepts are kept in the order of a deal's life: opening, working, closing; negations apart.
"""

from __future__ import annotations

from chalicelib.services.stage_vocabulary.closing import CLOSING
from chalicelib.services.stage_vocabulary.concept import CLOSED, IN_PROGRESS, NEW, STRONG, WEAK, Concept
from chalicelib.services.stage_vocabulary.negations import NEGATING_PREFIXES, NEGATIONS, POST_NEGATIONS
from chalicelib.services.stage_vocabulary.opening import OPENING
from chalicelib.services.stage_vocabulary.working import WORKING

CONCEPTS = (*OPENING, *WORKING, *CLOSING)

__all__ = [
    "CLOSED",
    "CONCEPTS",
    "IN_PROGRESS",
    "NEGATING_PREFIXES",
    "NEGATIONS",
    "NEW",
    "POST_NEGATIONS",
    "STRONG",
    "WEAK",
    "Concept",
]

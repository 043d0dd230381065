"""Suggest one of our statuses for an amoCRM stage from its id, type, name and position.

Signals, strongest first (the confidence says which one decided):
  1. system ids 142 (won) / 143 (lost)          → CLOSED       1.0
  2. type 1, the pipeline's "incoming" stage      → NEW          0.95
  3. a known word or phrase in the name (RU/UK/EN) → its status  0.9 for a phrase, 0.8 for a word stem
  4. position among the pipeline's regular stages → first NEW, later IN_PROGRESS, 0.3–0.4

Names are compared as "skeletons": lower case, punctuation dropped, and Cyrillic and Latin
look-alike letters folded together, so "Переговоры", "ПЕРЕГОВОРЫ!" and a name typed with a
Latin "о" or "р" all match the same keyword.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NEW, IN_PROGRESS, CLOSED = "NEW", "IN_PROGRESS", "CLOSED"
STATUSES = (NEW, IN_PROGRESS, CLOSED)
WON_STATUS_ID, LOST_STATUS_ID = 142, 143
UNSORTED_TYPE = 1

# Cyrillic letters that look like Latin ones, folded onto the Latin letter (and ё onto е).
_LOOKALIKES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
})

_KEYWORDS: dict[str, tuple[str, ...]] = {
    NEW: (
        "первичный контакт", "первый контакт", "новая заявка", "новый лид", "новые", "новый", "новая",
        "неразобран", "входящ", "необработан", "первинний контакт", "новий", "нова заявка", "нові",
        "нерозібран", "вхідн", "необроблен", "initial contact", "first contact", "new lead", "new",
        "incoming", "unsorted", "inbox", "fresh", "to contact",
    ),
    IN_PROGRESS: (
        "переговор", "принимают решение", "принятие решения", "решени", "согласование договора",
        "согласование", "договор", "в работе", "квалификац", "встреча", "показ", "предоплат", "счет",
        "бронирован", "ожидание оплаты", "ухвалюють рішення", "прийняття рішення", "рішення",
        "узгодження договору", "узгодження", "договір", "в роботі", "кваліфікац", "зустріч", "перегляд",
        "передоплат", "рахунок", "бронюван", "очікування оплати", "negotiation", "discussion",
        "decision making", "decision", "contract", "proposal", "qualified", "qualification", "meeting",
        "viewing", "in progress", "in work", "follow up", "offer", "invoice", "awaiting payment", "booking",
    ),
    CLOSED: (
        "успешно реализовано", "закрыто и не реализовано", "не реализовано", "реализовано", "успешно",
        "закрыт", "отказ", "отменен", "провал", "проигран", "выиграно", "оплачено", "завершен",
        "успішно реалізовано", "закрито і не реалізовано", "не реалізовано", "реалізовано", "успішно",
        "закрит", "відмов", "скасован", "програно", "виграно", "оплачено", "завершен",
        "closed won", "closed lost", "closed", "won", "lost", "cancelled", "canceled", "rejected",
        "declined", "completed", "done", "paid", "success", "failed",
    ),
}


def skeleton(text: str) -> str:
    """Case-, punctuation- and script-insensitive form of a stage name or keyword."""
    folded = text.lower().translate(_LOOKALIKES)
    return " ".join(re.sub(r"[^\w]+", " ", folded).split())


_MATCHERS = [(status, word, re.compile(r"(?:^| )" + re.escape(skeleton(word))))
             for status, words in _KEYWORDS.items() for word in words]


@dataclass(frozen=True)
class Suggestion:
    status: str
    confidence: float
    reason: str


def from_name(name: str) -> Suggestion | None:
    """The status whose longest keyword occurs in the name (at a word start), if any."""
    text = skeleton(name or "")
    best: tuple[int, str, str] | None = None
    for status, word, pattern in _MATCHERS:
        if pattern.search(text) and (best is None or len(word) > best[0]):
            best = (len(word), status, word)
    if best is None:
        return None
    confidence = 0.9 if " " in best[2] or len(skeleton(best[2])) >= len(text) - 1 else 0.8
    return Suggestion(best[1], confidence, f"name matches '{best[2]}'")


def suggest(stage_id: int, stage_type: int, name: str, position: int | None) -> Suggestion:
    """`position` is the 0-based index among the pipeline's regular stages (None for system ones)."""
    if stage_id in (WON_STATUS_ID, LOST_STATUS_ID):
        return Suggestion(CLOSED, 1.0, "system status (won/lost)")
    if stage_type == UNSORTED_TYPE:
        return Suggestion(NEW, 0.95, "incoming-leads stage")
    by_name = from_name(name)
    if by_name is not None:
        return by_name
    if position == 0:
        return Suggestion(NEW, 0.4, "first stage of the pipeline")
    return Suggestion(IN_PROGRESS, 0.3, "a middle stage of the pipeline")

"""Suggest one of our statuses for an amoCRM stage from its id, type, name and position.

Rules, strongest first (the confidence says which one decided):
  1. system ids 142 (won) / 143 (lost)           → CLOSED  1.0
  2. type 1, the pipeline's "incoming" stage       → NEW     0.95
  3. the words of the name, read with stage_vocabulary (stems per concept in ru/uk/en/es/pt/tr/id):
     - a word carries a concept when it starts with one of its stems (a stem shorter than five
       letters allows at most three more); the longest stem wins, so "başarısız" is lost, not "başarı"
     - a negation ("не", "no", "sin", "não", "tidak", "belum"; glued "не-", "un-", "dis-", "des-";
       Turkish "değil" after the word) turns a concept into its opposite: not realized is lost,
       not paid is still in progress, not sorted is new
     - "first"/"initial" with a contact or call word is a new lead; a payment word with "received" is paid
     - a won, lost, paid or closed word gives CLOSED, unless the name also names an unfinished step
       ("waiting", "check", "partial": "Ожидание оплаты", "Pago confirmado/esperando documentos")
     - otherwise NEW and IN_PROGRESS are weighed (a strong stem counts 2, a weak one 1); a tie goes
       to position
  4. nothing known in the name: position among the regular stages, first → NEW 0.4, later → IN_PROGRESS 0.3

Confidence, against the auto-apply threshold of 0.6: one strong and uncontested word → 0.9; NEW after
the first stage → 0.8; IN_PROGRESS for the first stage → 0.55, because people map the stage where leads
arrive to NEW whatever it is called; a weak word that the position agrees with → 0.65; a weak word
alone, or words that contradict each other → 0.5 or less.

Names are compared as "skeletons": lower case, accents and punctuation dropped, Cyrillic and Latin
look-alike letters folded together, so "Переговоры", "ПЕРЕГОВОРЫ!" and a name typed with a Latin "о"
or "р" all match the same stem, as do "Negociação" and "negociacao".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from chalicelib.services import stage_vocabulary as vocabulary
from chalicelib.services.stage_vocabulary import CLOSED, IN_PROGRESS, NEW, STRONG, Concept

STATUSES = (NEW, IN_PROGRESS, CLOSED)
WON_STATUS_ID, LOST_STATUS_ID = 142, 143
UNSORTED_TYPE = 1

# Cyrillic letters that look like Latin ones, folded onto the Latin letter (and Turkish dotless ı onto i).
_LOOKALIKES = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ı": "i",
    }
)


def skeleton(text: str) -> str:
    """Case-, accent-, punctuation- and script-insensitive form of a stage name or stem."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_LOOKALIKES)
    return " ".join(re.sub(r"[^\w]+", " ", bare).split())


_STEMS = sorted(
    ((skeleton(stem), stem, concept) for concept in vocabulary.CONCEPTS for stem in concept.stems),
    key=lambda entry: -len(entry[0]),
)
_NEGATIONS = {skeleton(word) for word in vocabulary.NEGATIONS}
_POST_NEGATIONS = {skeleton(word) for word in vocabulary.POST_NEGATIONS}
_NEGATING_PREFIXES = tuple(skeleton(prefix) for prefix in vocabulary.NEGATING_PREFIXES)


@dataclass(frozen=True)
class Suggestion:
    status: str
    confidence: float
    reason: str


@dataclass(frozen=True)
class _Hit:
    stem: str  # as written in the vocabulary, to show people which word was understood
    concept: Concept
    negated: bool

    @property
    def flipped_to(self) -> str | None:
        """The status the negated word says instead, or None when it is not negated (or its
        negation says nothing)."""
        return self.concept.negated if self.negated else None

    @property
    def flips(self) -> bool:
        return self.flipped_to is not None

    @property
    def label(self) -> str:
        if self.flips:
            return "lost" if self.concept.negated == CLOSED else f"not {self.concept.name}"
        return self.concept.outcome or self.concept.name

    @property
    def why(self) -> str:
        return f"'{self.stem}…' ({self.label})"


def _stem_of(word: str) -> tuple[str, Concept] | None:
    for folded, stem, concept in _STEMS:
        if word.startswith(folded) and (len(folded) >= 5 or len(word) - len(folded) <= 3):
            return stem, concept
    return None


def _hits(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    negate = False
    for word in text.split():
        if word in _NEGATIONS:
            negate = True
            continue
        if word in _POST_NEGATIONS and hits:
            hits[-1] = _Hit(hits[-1].stem, hits[-1].concept, not hits[-1].negated)
            continue
        found, glued = _stem_of(word), False
        if found is None:
            for prefix in _NEGATING_PREFIXES:
                rest = _stem_of(word[len(prefix) :]) if word.startswith(prefix) else None
                if rest is not None and rest[1].negated is not None:
                    found, glued = rest, True
                    break
        if found is not None:
            hits.append(_Hit(found[0], found[1], negate != glued))
            negate = False
    return hits


def _votes(hits: list[_Hit]) -> list[tuple[str, int, str]]:
    """(status, strength, why) for every word that says something, after the two word pairs."""
    said = {hit.concept.name for hit in hits if not hit.negated}
    first_contact = "first" in said and bool(said & {"contact", "call"})
    paid = {"payment", "received"} <= said
    votes = []
    for hit in hits:
        name = hit.concept.name
        if first_contact and name in ("first", "contact", "call"):
            votes.append((NEW, STRONG, f"'{hit.stem}…' (first contact)"))
        elif paid and name in ("payment", "received"):
            votes.append((CLOSED, STRONG, f"'{hit.stem}…' (payment received)"))
        elif (flipped_to := hit.flipped_to) is not None:
            votes.append((flipped_to, STRONG, hit.why))
        elif hit.concept.status is not None:
            votes.append((hit.concept.status, hit.concept.strength, hit.why))
    return votes


def _judge(name: str) -> tuple[str | None, bool, bool, str] | None:
    """(status or None for a tie, strong, contested, reason) from the name's words; None if it says nothing."""
    hits = _hits(skeleton(name or ""))
    votes = _votes(hits)
    if not votes:
        return None
    closing = [v for v in votes if v[0] == CLOSED]
    if closing:
        why = ", ".join(v[2] for v in closing)
        step = next((h for h in hits if h.concept.pending and not h.negated), None)
        if step is not None:
            return IN_PROGRESS, True, False, f"name says {why}, but {step.why} is not done yet"
        return CLOSED, any(v[1] == STRONG for v in closing), False, f"name says {why}"
    weight = {NEW: 0, IN_PROGRESS: 0}
    strong = {NEW: False, IN_PROGRESS: False}
    for status, strength, _ in votes:
        weight[status] += strength
        strong[status] |= strength == STRONG
    why = "name says " + ", ".join(v[2] for v in votes)
    if weight[NEW] == weight[IN_PROGRESS]:
        return None, False, True, why
    status, other = (NEW, IN_PROGRESS) if weight[NEW] > weight[IN_PROGRESS] else (IN_PROGRESS, NEW)
    return status, strong[status], strong[other], why


def _confidence(status: str, *, strong: bool, contested: bool, position: int | None) -> float:
    if contested:
        return 0.5
    if status == CLOSED:
        return 0.9 if strong else 0.5
    if status == NEW:
        if strong:
            return 0.8 if position else 0.9
        return 0.65 if position == 0 else 0.5
    if position == 0:
        return 0.55 if strong else 0.45
    if strong:
        return 0.9
    return 0.65 if position is not None else 0.5


def _from_words(name: str, position: int | None) -> Suggestion | None:
    judged = _judge(name)
    if judged is None:
        return None
    status, strong, contested, reason = judged
    if status is None:
        status = NEW if position == 0 else IN_PROGRESS
        return Suggestion(status, 0.45, f"{reason}; the tie goes to the stage's position")
    return Suggestion(status, _confidence(status, strong=strong, contested=contested, position=position), reason)


def from_name(name: str) -> Suggestion | None:
    """What the name alone says, or None when it has no word we know."""
    return _from_words(name, None)


def suggest(stage_id: int, *, stage_type: int, name: str, position: int | None) -> Suggestion:
    """`position` is the 0-based index among the pipeline's regular stages (None for system ones)."""
    if stage_id in (WON_STATUS_ID, LOST_STATUS_ID):
        return Suggestion(CLOSED, 1.0, "system status (won/lost)")
    if stage_type == UNSORTED_TYPE:
        return Suggestion(NEW, 0.95, "incoming-leads stage")
    by_name = _from_words(name, position)
    if by_name is not None:
        return by_name
    if position == 0:
        return Suggestion(NEW, 0.4, "first stage of the pipeline")
    return Suggestion(IN_PROGRESS, 0.3, "a middle stage of the pipeline")

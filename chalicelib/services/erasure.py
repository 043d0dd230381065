"""Forgetting a guest: a contact deleted in amoCRM, or a person who asked to be forgotten
(`POST guests/erase`, the CLI's `erase-guest`). docs/personal-data.md lists every table this
reaches and the copies it cannot (backups, dead-letter queues).

What a person leaves here, and what erasure does to it:
- `AmoContact`: the row (name, first and last name, phone, e-mail) is deleted;
- `Lead`: the guest fields copied from the contact are removed; the lead itself stays (the Main
  Backend refers to it), and so does `amo_contact_id`, so a contact restored in amoCRM fills
  them again; custom-field values holding the person's phone or e-mail are dropped;
- `AmoTask`: the person's name, phone or e-mail inside a task's text is replaced;
- `AmoActivityLog`: entries whose payload holds any of them lose that payload (new entries never
  hold personal data: personal_data.strip).
Notifications carry ids and statuses only, so nothing of the person is queued for the Main
Backend. The erasure itself is recorded under `guests#<contact id>` with counts only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from pynamodb.expressions.update import Action

from chalicelib.amo.api import AmoApi
from chalicelib.amo.errors import AmoNotFound, AmoUnknownPath, AmoValidationError
from chalicelib.models import AmoActivityLog, AmoContact, AmoTask, Lead, utc_now
from chalicelib.services import activity, personal_data
from chalicelib.services.errors import AmbiguousGuest, InvalidInput, NotFound
from chalicelib.services.personal_data import normal_email, normal_phone
from chalicelib.services.webhook_outcomes import EventOutcome

log = logging.getLogger(__name__)

TABLES = ("contacts", "leads", "tasks", "activityLog")
REDACTED = "[erased]"
MIN_NAME_CHARS = 3  # shorter name parts match too much text to be searched for
NOBODY = "no guest with that amoContactId, e-mail or phone is held"


@dataclass
class Person:
    """What identifies one guest in our tables: the contact id (when known) and the values to
    search for (name parts, phones, e-mails as given and as compared)."""

    contact_id: int | None = None
    names: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # normalised digits
    emails: set[str] = field(default_factory=set)  # normalised
    leads: dict[str, Lead] = field(default_factory=dict)  # our id -> lead
    mentioned: dict[str, Lead] = field(default_factory=dict)  # other leads whose custom fields hold the values

    def learn(self, *, name: str | None = None, phone: str | None = None, email: str | None = None) -> None:
        for part in [name, *re.split(r"[\s\-]+", name or "")]:  # "Quintero-Hale": "quintero", "hale"
            if part and len(part.strip()) >= MIN_NAME_CHARS:
                self.names.add(part.strip().lower())
        if normal_phone(phone):
            self.phones.add(normal_phone(phone))
        if normal_email(email):
            self.emails.add(normal_email(email))

    def found_in(self, text: str) -> bool:
        """Does `text` name the person: a name part as a whole word ("hale", not "whale"), an
        e-mail, or a phone however written (as `redact` finds it)?"""
        lowered = text.lower()
        return (
            any(re.search(rf"(?<!\w){re.escape(v)}(?!\w)", lowered) for v in self.names)
            or any(v in lowered for v in self.emails)
            or any(pattern.search(text) for pattern in self._phone_patterns())
        )

    def redact(self, text: str, *, name_parts: bool = False) -> str:
        """`text` with the full name, phone and e-mail replaced. Single name parts only with
        `name_parts` (a task of the person's own lead or contact): elsewhere "Anna" alone is
        not the person."""
        for value in sorted(self.names | self.emails, key=len, reverse=True):
            if " " in value or "@" in value:
                text = re.sub(re.escape(value), REDACTED, text, flags=re.IGNORECASE)
            elif name_parts:
                text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", REDACTED, text, flags=re.IGNORECASE)
        for pattern in self._phone_patterns():
            text = pattern.sub(REDACTED, text)
        return text

    def contact_values(self) -> Person:
        """The person by phone and e-mail only: what may be searched for in another guest's lead
        (where a name part of theirs may be someone else's)."""
        return Person(contact_id=self.contact_id, phones=set(self.phones), emails=set(self.emails))

    def _phone_patterns(self) -> list[re.Pattern[str]]:
        """Each phone however written: up to three signs between its digits, its country code or
        none, a Russian number's leading 8 for 7; never inside a longer run of digits."""
        separator = r"[^\w\n]{0,3}"
        patterns = []
        for digits in sorted(self.phones):
            if len(digits) >= 6:
                core, country = separator.join(digits[-10:]), digits[:-10]
                codes = [separator.join(country), *(["8"] if country == "7" else [])] if country else []
                prefix = rf"(?:\+?(?:{'|'.join(codes)}){separator})?" if codes else ""
                patterns.append(re.compile(rf"(?<!\d){prefix}{core}(?!\d)"))
        return patterns


# -- a contact deleted in amoCRM ---------------------------------------------------------------------


def forget_contact(contact_id: int) -> dict[str, int]:
    """The contact's row, the guest fields of every lead linked to it and its activity entries'
    payloads; counts per table."""
    counts = dict.fromkeys(TABLES, 0)
    counts["contacts"] = _delete_row(contact_id)
    for lead in Lead.by_amo_contact_id.query(contact_id):
        counts["leads"] += _blank_guest(lead)
    counts["activityLog"] = _scrub_activity(AmoActivityLog.query(f"contacts#{contact_id}"), None)
    return counts


def _delete_row(contact_id: int) -> int:
    try:
        AmoContact.get(contact_id).delete()
        return 1
    except AmoContact.DoesNotExist:
        return 0


def _blank_guest(lead: Lead, person: Person | None = None, *, guest_fields: bool = True) -> int:
    """The lead's guest fields removed (`guest_fields`), and its custom fields that hold `person`."""
    guest = (Lead.guest_name, Lead.guest_phone, Lead.guest_email) if guest_fields else ()
    actions: list[Action] = [a.remove() for a in guest if getattr(lead, a.attr_name)]
    naming = _fields_naming(lead, person) if person is not None else []
    if naming:
        kept = [f for f in lead.custom_fields or [] if f not in naming]
        actions.append(Lead.custom_fields.set(kept or None))
    if not actions:
        return 0
    lead.update(actions=[*actions, Lead.updated_at.set(utc_now())])
    return 1


def _fields_naming(lead: Lead, person: Person) -> list:
    """The lead's custom fields (as amoCRM holds them) whose values name `person`."""
    return [f for f in lead.custom_fields or [] if person.found_in(json.dumps(f, ensure_ascii=False))]


def _scrub_activity(items: Iterable[AmoActivityLog], person: Person | None) -> int:
    """Entries whose payload holds personal data (any, or `person`'s) keep only its safe keys,
    or nothing when that still names the person."""
    scrubbed = 0
    for item in items:
        if item.entity_type == "guests" or item.payload is None:
            continue
        text = json.dumps(item.payload, ensure_ascii=False)
        stripped = personal_data.strip(item.payload)
        if person is not None and not person.found_in(text):
            continue
        if person is None and stripped == item.payload:
            continue
        if person is not None and person.found_in(json.dumps(stripped, ensure_ascii=False)):
            stripped = {"erased": True}
        item.update(actions=[AmoActivityLog.payload.set(stripped)])
        scrubbed += 1
    return scrubbed


# -- a person who asked to be forgotten ----------------------------------------------------------


def find(*, amo_contact_id: int | None = None, email: str | None = None, phone: str | None = None) -> Person:
    """The person the caller names, with every value of theirs we hold. Raises AmbiguousGuest
    when the e-mail or phone belongs to several contacts, NotFound when to none."""
    person = Person()
    person.learn(phone=phone, email=email)
    contact_ids: set[int] = set()
    if amo_contact_id is not None:
        contact_ids.add(amo_contact_id)
    if email or phone:
        wanted_email, wanted_phone = normal_email(email), normal_phone(phone)

        def matches(found_email: str | None, found_phone: str | None) -> bool:
            return bool(wanted_email and normal_email(found_email) == wanted_email) or bool(
                wanted_phone and normal_phone(found_phone) == wanted_phone
            )

        contact_ids |= {c.id for c in AmoContact.scan() if matches(c.email, c.phone)}
        for lead in Lead.scan():
            if matches(lead.guest_email, lead.guest_phone):
                person.leads[lead.id] = lead
                if lead.amo_contact_id is not None:
                    contact_ids.add(lead.amo_contact_id)
            elif lead.custom_fields and person.found_in(json.dumps(lead.custom_fields, ensure_ascii=False)):
                person.mentioned[lead.id] = lead  # the values given, in another lead's fields
    if len(contact_ids) > 1:
        raise AmbiguousGuest(sorted(contact_ids))
    person.contact_id = next(iter(contact_ids), None)
    if person.contact_id is not None:
        try:
            contact = AmoContact.get(person.contact_id)
            person.learn(name=contact.name, phone=contact.phone, email=contact.email)
            person.learn(name=contact.first_name)
            person.learn(name=contact.last_name)
        except AmoContact.DoesNotExist:
            pass
        person.leads.update((lead.id, lead) for lead in Lead.by_amo_contact_id.query(person.contact_id))
    for lead in person.leads.values():
        person.learn(name=lead.guest_name, phone=lead.guest_phone, email=lead.guest_email)
    return person


def erase_guest(
    amo: Callable[[], AmoApi],
    *,
    amo_contact_id: int | None = None,
    email: str | None = None,
    phone: str | None = None,
    also_in_amo: bool = False,
) -> dict:
    """Erase one person from every table (and, `also_in_amo`, from the amoCRM contact first, so
    a failure there leaves everything to retry); counts per table. Asking again by amoContactId
    answers the same erasure with zero counts."""
    if amo_contact_id is None and not normal_email(email) and not normal_phone(phone):
        raise InvalidInput("give amoContactId, email or phone")
    person = find(amo_contact_id=amo_contact_id, email=email, phone=phone)
    held = person.leads or person.mentioned or _holds_contact(person.contact_id)
    # an e-mail or phone no row holds (its contact already deleted, or not its first value) may
    # still be in a task's text or the activity log: searched for before answering 404
    only_in_texts = not held and person.contact_id is None
    if not held and not only_in_texts and not _erased_before(person.contact_id):
        raise NotFound(NOBODY)
    # amoCRM first: a failure there changes nothing here, so the request can be repeated as it is
    redactions = _task_redactions(person)
    leads_of = [(lead, person) for lead in person.leads.values()]
    leads_of += [(lead, person.contact_values()) for lead in person.mentioned.values()]
    amo_changed, refused = (
        _clear_in_amo(amo(), person=person, redactions=redactions, leads_of=leads_of) if also_in_amo else (False, [])
    )
    # What is searched with goes last: the contact row and the leads' guest fields name the
    # person, so a run cut short (a timeout, DynamoDB busy) can be asked again and still find
    # what the tasks and the activity log hold.
    tasks_scrubbed = _rewrite_tasks(redactions)
    activity_scrubbed = _scrub_activity(AmoActivityLog.scan(), person)
    leads_blanked = sum(_blank_guest(lead, who, guest_fields=lead.id in person.leads) for lead, who in leads_of)
    counts = {
        "contacts": _delete_row(person.contact_id) if person.contact_id is not None else 0,
        "leads": leads_blanked,
        "tasks": tasks_scrubbed,
        "activityLog": activity_scrubbed,
    }
    if only_in_texts and not any(counts.values()):
        raise NotFound(NOBODY)
    by = "amoContactId" if amo_contact_id is not None else "email" if email else "phone"
    activity.record(
        "guests",
        entity_id=person.contact_id,
        event_type="guest.erased",
        outcome=EventOutcome.ERASED,
        account_id=None,
        received_at=utc_now().timestamp(),
        payload={"erased": counts, "amoChanged": amo_changed, "by": by},
    )
    answer = {"amoContactId": person.contact_id, "erased": counts, "amoChanged": amo_changed}
    return {**answer, "amoRefused": refused} if refused else answer


def _clear_in_amo(
    amo: AmoApi, *, person: Person, redactions: list[tuple[AmoTask, str, str]], leads_of: list[tuple[Lead, Person]]
) -> tuple[bool, list[str]]:
    """The person cleared in amoCRM, where our mirror shows them: the contact's name, phones and
    e-mails; the lead custom fields holding them (emptied); the task texts naming them
    (rewritten as here). Otherwise the next sync would bring them back. Whether amoCRM changed,
    and what it refused (named in the answer; the rest goes on)."""
    changed, refused = False, []
    if person.contact_id is not None:
        try:
            amo.contacts.clear_personal(person.contact_id, personal_data.PLACEHOLDER_NAME)
            changed = True
        except AmoNotFound:
            log.info("contact %s is not in amoCRM any more: nothing to clear there", person.contact_id)
    writes: list[tuple[str, Callable[[], None]]] = [
        (f"lead {lead.amo_lead_id}", partial(amo.leads.clear_fields, lead.amo_lead_id, ids))
        for lead, who in leads_of
        if lead.amo_lead_id is not None
        and (ids := [f["field_id"] for f in _fields_naming(lead, who) if isinstance(f.get("field_id"), int)])
    ]
    writes += [
        (
            f"task {task.id}",
            partial(amo.tasks.rewrite, task.id, text=text, result_text=result if task.result_text else None),
        )
        for task, text, result in redactions
    ]
    for what, write in writes:
        try:
            write()
            changed = True
        except AmoNotFound:
            log.info("%s is not in amoCRM any more: nothing to clear there", what)
        except (AmoValidationError, AmoUnknownPath) as error:  # applied nothing: said, and the rest goes on
            refused.append(f"{what}: {error}")
    return changed, refused


def _holds_contact(contact_id: int | None) -> bool:
    if contact_id is None:
        return False
    try:
        AmoContact.get(contact_id)
        return True
    except AmoContact.DoesNotExist:
        return False


def _erased_before(contact_id: int | None) -> bool:
    return contact_id is not None and any(True for _ in AmoActivityLog.query(f"guests#{contact_id}", limit=1))


def _task_redactions(person: Person) -> list[tuple[AmoTask, str, str]]:
    """Every task naming the person, with its text and result as they become; on the tasks of
    their own leads and contact, their first and last names alone are replaced too."""
    own = {("leads", lead.amo_lead_id) for lead in person.leads.values() if lead.amo_lead_id is not None}
    if person.contact_id is not None:
        own.add(("contacts", person.contact_id))
    found = []
    for task in AmoTask.scan():
        name_parts = (task.entity_type, task.entity_id) in own
        text, result = task.text or "", task.result_text or ""
        new_text, new_result = person.redact(text, name_parts=name_parts), person.redact(result, name_parts=name_parts)
        if new_text != text or new_result != result:
            found.append((task, new_text, new_result))
    return found


def _rewrite_tasks(redactions: list[tuple[AmoTask, str, str]]) -> int:
    for task, text, result in redactions:
        actions: list[Action] = [AmoTask.text.set(text), AmoTask.updated_at.set(utc_now())]
        if task.result_text:
            actions.append(AmoTask.result_text.set(result))
        task.update(actions=actions)
    return len(redactions)

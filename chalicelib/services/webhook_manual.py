"""Registering the webhook by hand, where amoCRM refuses its webhooks API.

amoCRM's webhooks API needs the Advanced or Enterprise plan (amocrm.ru: Extended or Professional)
and an administrator's token; on a lower plan it answers 402 or 403 (reference §9.5, §13). Hooks
set up in amoCRM's settings are delivered on every plan, so `webhook/register` answers with the
steps a person takes there instead of failing, and `status` says "registration: manual".
"""

from __future__ import annotations

from chalicelib.amo.errors import AmoError
from chalicelib.services.webhook_secret import PLACEHOLDER, with_secret, without_secret

MANUAL = "manual"
_ACTIONS = {
    "add": "added",
    "update": "edited",
    "delete": "deleted",
    "restore": "restored",
    "status": "stage changed",
    "responsible": "responsible user changed",
}


def event_label(setting: str) -> str:
    """`status_lead` → "Lead: stage changed (status_lead)": what to tick in amoCRM's list."""
    action, _, entity = setting.partition("_")
    return f"{entity.capitalize()}: {_ACTIONS.get(action, action)} ({setting})"


def refusal(error: AmoError) -> str:
    return (
        f"amoCRM refused its webhooks API ({error.status}): managing webhooks through the API needs the "
        "Advanced or Enterprise plan (amocrm.ru: Extended or Professional) and an administrator's token"
    )


def register_steps(destination: str, *, events: list[str], error: AmoError, rotating: bool = False) -> dict:
    """What to do in amoCRM's settings to subscribe `destination` (its secret shown as a
    placeholder: the answer never carries a secret) to `events`."""
    url = with_secret(without_secret(destination), PLACEHOLDER)
    steps = [
        'Sign in to amoCRM as an administrator and open Settings → Integrations, then "Web hooks" at the '
        'top right (amocrm.ru: amoMarket → "WEB HOOKS")',
        f"Add a webhook with the URL {url}, with {PLACEHOLDER} replaced by the value of AMO_WEBHOOK_SECRET "
        "(Secrets Manager: <SecretsPrefix>webhook)",
        "Tick these events: " + "; ".join(event_label(e) for e in events),
        "Save",
    ]
    if rotating:  # AMO_WEBHOOK_SECRET_PREVIOUS is set: the old URL is still subscribed
        steps.append("Delete the webhook with the same URL and the previous secret (AMO_WEBHOOK_SECRET_PREVIOUS)")
    return {
        "message": "register the webhook by hand in amoCRM: " + refusal(error),
        "registration": MANUAL,
        "destination": url,
        "settings": events,
        "steps": steps,
    }


def unregister_steps(destination: str, error: AmoError) -> dict:
    return {
        "message": "delete the webhook by hand in amoCRM: " + refusal(error),
        "registration": MANUAL,
        "destination": with_secret(without_secret(destination), PLACEHOLDER),
        "settings": [],
        "steps": [
            'Sign in to amoCRM as an administrator and open Settings → Integrations, then "Web hooks"',
            "Delete the webhook with this URL",
        ],
    }

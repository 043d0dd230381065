"""amoCRM notes of leads (reference §10): `/api/v4/leads/{id}/notes`."""

from __future__ import annotations

from chalicelib.amo.client import AmoClient
from chalicelib.amo.entities import created_id


class LeadNotes:
    def __init__(self, client: AmoClient):
        self.client = client

    def add_text(self, lead_id: int, text: str) -> int | None:
        """A common (text) note on the lead; the new note's id."""
        answer = self.client.post(
            f"/api/v4/leads/{int(lead_id)}/notes", [{"note_type": "common", "params": {"text": text}}]
        )
        return created_id(answer, "notes")

"""`POST /api/v4/leads/complex` within amoCRM's limits (reference §3.6, §5.4): ≤ 50 leads, one
contact and one company per lead, 40 field values per entity; duplicate control answers an
existing lead, `merged: true`, when `complex_duplicates` is on."""

import pytest

from sandbox import entities


def lead_with_contact(name, phone=None, email=None, **lead):
    fields = []
    if phone:
        fields.append({"field_code": "PHONE", "values": [{"value": phone, "enum_code": "MOB"}]})
    if email:
        fields.append({"field_code": "EMAIL", "values": [{"value": email, "enum_code": "WORK"}]})
    return {"name": name, **lead, "_embedded": {"contacts": [{"first_name": name, "custom_fields_values": fields}]}}


def values(count):
    return [{"field_id": 900001 + i, "values": [{"value": str(i)}]} for i in range(count)]


def problem_paths(response):
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    return [error["path"] for entry in response.json()["validation-errors"] for error in entry["errors"]]


def test_the_answer_is_a_plain_array_in_the_documented_shape(api):
    answer = api("POST", "/api/v4/leads/complex", json=[lead_with_contact("Олена", request_id="r1")]).json()
    assert isinstance(answer, list)
    assert set(answer[0]) == {"id", "contact_id", "company_id", "request_id", "merged"}
    assert answer[0]["request_id"] == ["r1"] and answer[0]["merged"] is False and answer[0]["company_id"] is None


def test_more_than_50_leads_are_refused_and_nothing_is_created(sandbox, api):
    before = len(sandbox.leads)
    assert api("POST", "/api/v4/leads/complex", json=[{"name": f"L{i}"} for i in range(51)]).status_code == 400
    assert len(sandbox.leads) == before
    assert api("POST", "/api/v4/leads/complex", json=[{"name": f"L{i}"} for i in range(50)]).status_code == 200


@pytest.mark.parametrize("key", ["contacts", "companies"])
def test_a_lead_with_two_contacts_or_two_companies_is_refused(api, key):
    item = {"name": "Две", "_embedded": {key: [{"name": "A"}, {"name": "B"}]}}
    assert problem_paths(api("POST", "/api/v4/leads/complex", json=[item])) == [f"_embedded.{key}"]


def test_more_than_40_field_values_on_one_entity_are_refused(api):
    assert problem_paths(api("POST", "/api/v4/leads/complex", json=[{"name": "x", "custom_fields_values": values(41)}]))
    contact = {"name": "c", "custom_fields_values": values(41)}
    paths = problem_paths(
        api("POST", "/api/v4/leads/complex", json=[{"name": "x", "_embedded": {"contacts": [contact]}}])
    )
    assert paths == ["_embedded.contacts.0.custom_fields_values"]
    within = [{"name": "x", "custom_fields_values": values(40), "_embedded": {"contacts": [{"name": "c"}]}}]
    assert api("POST", "/api/v4/leads/complex", json=within).status_code == 200


def test_duplicates_create_new_leads_while_duplicate_control_is_off(sandbox, api, control):
    assert control("/config", method="GET").json()["complex_duplicates"] == "off"
    phone = "+380 50 111 22 33"
    first = api("POST", "/api/v4/leads/complex", json=[lead_with_contact("Олена", phone=phone)]).json()[0]
    again = api("POST", "/api/v4/leads/complex", json=[lead_with_contact("Олена", phone=phone)]).json()[0]
    assert again["merged"] is False and again["id"] != first["id"] and again["contact_id"] != first["contact_id"]


def test_duplicate_control_answers_the_contacts_open_lead_merged(sandbox, api, control):
    first = api("POST", "/api/v4/leads/complex", json=[lead_with_contact("Олена", phone="+380501112233")]).json()[0]
    assert control("/config", {"complex_duplicates": "on"}).status_code == 200
    before = len(sandbox.leads)
    # the same phone written differently, in the second item of the request
    body = [
        lead_with_contact("Новий", phone="+7 900 000 00 00"),
        lead_with_contact("Олена", phone="380 (50) 111-22-33"),
    ]
    fresh, merged = api("POST", "/api/v4/leads/complex", json=body).json()
    assert merged == {
        "id": first["id"],
        "contact_id": first["contact_id"],
        "company_id": None,
        "request_id": ["1"],
        "merged": True,
    }
    assert fresh["merged"] is False and fresh["request_id"] == ["0"]
    assert len(sandbox.leads) == before + 1  # only the new one


def test_duplicate_control_matches_e_mails_and_skips_closed_leads(sandbox, api, control):
    control("/config", {"complex_duplicates": "on"})
    contact_id = sorted(sandbox.contacts)[0]
    email = next(f for f in sandbox.contacts[contact_id]["custom_fields_values"] if f["field_code"] == "EMAIL")
    address = email["values"][0]["value"].upper()
    linked = [i for i, lead in sandbox.leads.items() if any(c["id"] == contact_id for c in lead["contacts"])]
    for lead_id in linked:
        sandbox.leads[lead_id]["status_id"] = entities.LOST_STATUS_ID
    answer = api("POST", "/api/v4/leads/complex", json=[lead_with_contact("Дубль", email=address)]).json()[0]
    # no open lead: a new one, on the existing contact (no second contact)
    assert answer["merged"] is False and answer["id"] not in linked and answer["contact_id"] == contact_id
    again = api("POST", "/api/v4/leads/complex", json=[lead_with_contact("Дубль", email=address)]).json()[0]
    assert again == {**again, "id": answer["id"], "contact_id": contact_id, "merged": True}


def test_leads_of_one_request_are_not_checked_against_each_other(api, control):
    control("/config", {"complex_duplicates": "on"})
    body = [lead_with_contact("Один", phone="+44 7000 000001"), lead_with_contact("Один", phone="+44 7000 000001")]
    answers = api("POST", "/api/v4/leads/complex", json=body).json()
    assert [a["merged"] for a in answers] == [False, False] and answers[0]["id"] != answers[1]["id"]


def test_complex_duplicates_takes_only_off_or_on(control):
    assert control("/config", {"complex_duplicates": "sometimes"}).status_code == 400

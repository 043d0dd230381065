"""A renamed account (reference §1.6): the sandbox renames the account, the service's next
refresh is refused on the old name, and the service finds the new domain, refreshes there,
stores it and stays connected to the same account."""

ACCOUNT_ID = 30896271  # the sandbox's account


def test_a_renamed_account_stays_connected_under_its_new_domain(backend):
    before = backend.stats()
    assert backend.sandbox("POST", "/_sandbox/rename", {"subdomain": "renamedrealty"})[0] == 200
    backend.sandbox("POST", "/_sandbox/expire-tokens")

    status, body = backend.call("GET", "test")

    assert status == 200, body
    assert (body["connected"], body["accountId"], body["needsReauthorization"]) == (True, ACCOUNT_ID, False)
    assert body["domain"] == "renamedrealty.amocrm.ru"
    after = backend.stats()
    assert after["subdomain_lookups"] == before["subdomain_lookups"] + 1
    assert after["refreshes"] == before["refreshes"] + 1  # refused on the old name, then granted
    tokens = backend.scan("tokens", "subdomain", "domain", "account_id")
    assert tokens == [{"subdomain": "renamedrealty", "domain": "renamedrealty.amocrm.ru", "account_id": ACCOUNT_ID}]


def test_after_the_rename_the_next_expiry_refreshes_without_another_lookup(backend):
    lookups = backend.stats()["subdomain_lookups"]
    backend.sandbox("POST", "/_sandbox/expire-tokens")

    status, body = backend.call("GET", "test")

    assert status == 200 and body["connected"] is True
    assert backend.stats()["subdomain_lookups"] == lookups


def test_installing_again_under_the_new_name_keeps_the_same_account(backend):
    installed = backend.connect()  # the sandbox's callback now carries referer renamedrealty.amocrm.ru

    assert "renamedrealty.amocrm.ru" in installed["callback_body"]
    status, body = backend.call("GET", "test")
    assert status == 200 and (body["accountId"], body["domain"]) == (ACCOUNT_ID, "renamedrealty.amocrm.ru")

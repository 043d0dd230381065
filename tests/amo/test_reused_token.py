"""A sync reuses its access token for a few seconds instead of reading the token item for
every request; a 401 replaces it with what the store holds (or refreshes)."""

from chalicelib.amo.api import AmoApi
from chalicelib.amo.budget import RateLimiter
from chalicelib.amo.client import AmoClient
from chalicelib.amo.oauth import OAuth, OAuthCredentials
from chalicelib.amo.reused_token import REUSE_SECONDS, ReusedToken


class Store:
    def __init__(self):
        self.token = "access-1"
        self.reads = 0
        self.refused: list[str] = []

    def access_token(self):
        self.reads += 1
        return self.token

    def refresh_after_unauthorized(self, rejected_token):
        self.refused.append(rejected_token)
        return self.token


def test_the_token_is_read_once_per_window_and_again_after_it():
    store, now = Store(), [100.0]
    reused = ReusedToken(store, clock=lambda: now[0])

    assert [reused.access_token() for _ in range(20)] == ["access-1"] * 20
    assert store.reads == 1
    store.token = "access-2"  # another process rotated it
    now[0] += REUSE_SECONDS
    assert reused.access_token() == "access-2" and store.reads == 2


def test_a_refused_token_is_replaced_by_what_the_source_answers():
    store = Store()
    reused = ReusedToken(store, clock=lambda: 100.0)
    assert reused.access_token() == "access-1"
    store.token = "access-2"  # rotated elsewhere; amoCRM refuses the old one

    assert reused.refresh_after_unauthorized("access-1") == "access-2"
    assert store.refused == ["access-1"]
    assert reused.access_token() == "access-2" and store.reads == 1


def test_only_the_bulk_lane_reuses_and_wrapping_happens_once():
    store = Store()
    host = "https://example.amocrm.ru"
    credentials = OAuthCredentials("client", "secret", f"{host}/callback")
    limiter = RateLimiter(7, margin=0.08)
    api = AmoApi(
        AmoClient(host, tokens=store, limiter=limiter), OAuth(AmoClient(host, limiter=limiter), lambda: credentials)
    )
    bulk = api.bulk()
    assert api.client.tokens is store  # interactive calls still read the store every time
    assert isinstance(bulk.client.tokens, ReusedToken) and bulk.client.tokens.source is store
    assert bulk.bulk().client.tokens is bulk.client.tokens

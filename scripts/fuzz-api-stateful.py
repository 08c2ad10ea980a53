"""A stateful property test of accounts, sessions and plays, from an independent client.

Hypothesis drives random sequences of what users do (create guests, register, sign in, refresh
tokens, reuse a spent refresh token, play, read, sign out, delete) against a live server and
checks, after every step, what the server must guarantee:
- no answer is a 5xx, and every error is a problem document with a `code`;
- a token works until it is signed out, refreshed away, revoked by reuse or its account is
  deleted, and never after (401 invalid_token with a WWW-Authenticate challenge);
- a play counts for the bearer's account and no other: each account's rounds equal the plays
  it made (read once the batched writes have landed);
- a deleted account's stats are gone.

    python fuzz-api-stateful.py http://127.0.0.1:PORT [EXAMPLES]

Run by scripts/fuzz-api with the venv it installs (hypothesis comes with schemathesis).
"""
import http.client
import json
import sys
import time
import urllib.parse

from hypothesis import settings, strategies as st, HealthCheck
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

BASE = urllib.parse.urlparse(sys.argv[1])
EXAMPLES = int(sys.argv[2]) if len(sys.argv) > 2 else 50
PASSWORD = "a long enough secret"


def call(method, path, token=None, body=None):
    connection = http.client.HTTPConnection(BASE.hostname, BASE.port, timeout=30)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    payload = json.dumps(body) if body is not None else None
    connection.request(method, path, payload, headers)
    response = connection.getresponse()
    raw = response.read()
    status = response.status
    challenge = response.getheader("www-authenticate")
    connection.close()
    assert status < 500, f"{method} {path} -> {status} {raw[:200]!r}"
    document = json.loads(raw) if raw else None
    if status >= 400:
        assert document and "code" in document, f"{method} {path} -> {status} {raw[:200]!r}"
    if status == 401:
        assert challenge and challenge.startswith("Bearer"), f"{method} {path}: 401 without a challenge"
    return status, document


class Users(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # account id -> plays counted for it; tokens and their expected state.
        self.plays = {}
        self.live = {}       # access token -> account id
        self.dead = set()    # access tokens that must be refused
        self.refresh = {}    # refresh token -> (access token, account id)
        self.spent = {}      # spent refresh token -> its session's id
        self.current = {}    # session id -> its access token now
        self.deleted = set()
        self.names = {}      # account id -> username
        self.counter = 0

    sessions = Bundle("sessions")

    def _signed_in(self, document):
        session = document["session"] if "session" in document else document
        account = document["account"]["id"] if "account" in document else session["account_id"]
        self.live[session["access_token"]] = account
        self.refresh[session["refresh_token"]] = (session["access_token"], account)
        self.current[session["session_id"]] = session["access_token"]
        self.plays.setdefault(account, 0)
        return session["access_token"]

    @rule(target=sessions)
    def create_guest(self):
        status, document = call("POST", "/accounts/guest")
        assert status == 201, document
        return self._signed_in(document)

    @rule(target=sessions)
    def register(self):
        self.counter += 1
        name = f"user{self.counter}x{int(time.time() * 1000) % 100000}"
        status, document = call("POST", "/accounts", body={"username": name, "password": PASSWORD})
        assert status == 201, document
        self.names[document["account"]["id"]] = name
        return self._signed_in(document)

    @rule(target=sessions, token=sessions)
    def sign_in_again(self, token):
        account = self.live.get(token)
        if account is None or account not in self.names:
            return token
        status, document = call("POST", "/sessions", body={"username": self.names[account].upper(), "password": PASSWORD})
        assert status == 200, document
        assert document["account"]["id"] == account
        return self._signed_in(document)

    @rule(token=sessions)
    def play(self, token):
        status, document = call("POST", "/play", token, {"choice": "rock"})
        if token in self.live:
            assert status == 200, document
            self.plays[self.live[token]] += 1
        else:
            assert status == 401 and document["code"] == "invalid_token", (status, document)

    @rule(token=sessions, forged=st.booleans())
    def play_with_a_forged_player_id(self, token, forged):
        # Headers and body naming someone else change nothing: the play is anonymous.
        victim = next(iter(self.plays), "nobody")
        connection = http.client.HTTPConnection(BASE.hostname, BASE.port, timeout=30)
        body = {"choice": "paper", "player_id": victim} if forged else {"choice": "paper"}
        connection.request("POST", "/play", json.dumps(body), {"content-type": "application/json", "x-player-id": victim})
        response = connection.getresponse()
        response.read()
        assert response.status == 200

    @rule(target=sessions, token=sessions)
    def refresh_tokens(self, token):
        pairs = [(r, a) for r, (access, a) in self.refresh.items() if access == token]
        if not pairs:
            return token
        spent, account = pairs[0]
        status, document = call("POST", "/sessions/refresh", body={"refresh_token": spent})
        assert status == 200, document
        del self.refresh[spent]
        self.live.pop(token, None)
        self.dead.add(token)
        new_access = document["access_token"]
        self.spent[spent] = document["session_id"]
        self.current[document["session_id"]] = new_access
        self.live[new_access] = account
        self.refresh[document["refresh_token"]] = (new_access, account)
        return new_access

    @precondition(lambda self: bool(self.spent))
    @rule()
    def reuse_a_spent_refresh_token(self):
        spent, session = next(iter(self.spent.items()))
        del self.spent[spent]
        access = self.current.get(session)
        status, document = call("POST", "/sessions/refresh", body={"refresh_token": spent})
        assert status == 401 and document["code"] == "invalid_token", (status, document)
        # The whole session ends: its current tokens too.
        if access in self.live:
            del self.live[access]
            self.dead.add(access)
        for refresh, (current, _) in list(self.refresh.items()):
            if current == access:
                del self.refresh[refresh]

    @rule(token=sessions)
    def sign_out(self, token):
        status, document = call("DELETE", "/sessions/current", token)
        if token in self.live:
            assert status == 204, document
            del self.live[token]
            self.dead.add(token)
            for refresh, (current, _) in list(self.refresh.items()):
                if current == token:
                    del self.refresh[refresh]
        else:
            assert status == 401

    @rule(token=sessions)
    def delete_account(self, token):
        account = self.live.get(token)
        status, document = call("DELETE", "/me", token)
        if account is None:
            assert status in (204, 401), (status, document)
            return
        assert status == 204, document
        self.deleted.add(account)
        self.plays.pop(account, None)
        for other, owner in list(self.live.items()):
            if owner == account:
                del self.live[other]
                self.dead.add(other)
        for refresh, (_, owner) in list(self.refresh.items()):
            if owner == account:
                del self.refresh[refresh]

    @rule(token=sessions)
    def read_me(self, token):
        status, document = call("GET", "/me", token)
        if token in self.live:
            assert status == 200 and document["id"] == self.live[token], (status, document)
        else:
            assert status == 401, (status, document)

    @invariant()
    def dead_tokens_stay_dead(self):
        for token in list(self.dead)[:3]:
            status, _ = call("GET", "/me", token)
            assert status == 401

    def teardown(self):
        # Results are written in batches: wait for them, then every account's rounds must be
        # exactly its plays, and deleted accounts must have none.
        deadline = time.time() + 5
        for account, plays in self.plays.items():
            while True:
                status, document = call("GET", f"/players/{account}/stats")
                rounds = document["rounds"] if status == 200 else 0
                if rounds == plays or time.time() > deadline:
                    break
                time.sleep(0.05)
            assert rounds == plays, f"{account}: {rounds} rounds, {plays} plays"
        for account in self.deleted:
            status, _ = call("GET", f"/players/{account}/stats")
            assert status == 404, f"deleted {account} still has stats"


Users.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

if __name__ == "__main__":
    import unittest
    suite = unittest.TestLoader().loadTestsFromTestCase(Users.TestCase)
    result = unittest.TextTestRunner(verbosity=1).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)

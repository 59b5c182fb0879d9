"""API tokens (execdesk.api.tokens): shown once, stored as their SHA-256 only (mode 0600), authenticated in
constant time, revocable; one live token per name."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from execdesk.api import actions
from execdesk.api.tokens import TokenStore, Unauthenticated
from execdesk.desk.identity import Identity, NotAllowed, Role, local_identity
from execdesk.errors import InvalidInput

ADMIN = local_identity()


def test_create_when_made_then_the_token_shown_once_and_only_its_sha256_stored_mode_0600(tmp_path: Path) -> None:
    # Act
    token, record = TokenStore(tmp_path).create("ana", "lead", ADMIN, now=1_700_000_000)
    # Assert: the token reads edk_<id>_<secret>; the record says who made it, never the token nor its hash
    prefix, token_id, secret = token.split("_", 2)
    assert (prefix, token_id) == ("edk", record["id"])
    assert len(secret) == 43
    assert record == {"id": token_id, "name": "ana", "role": "lead", "created_at": 1_700_000_000,
                      "created_by": ADMIN.name, "revoked_at": None}
    path = tmp_path / "tokens.json"
    text = path.read_text()
    assert token not in text
    assert secret not in text
    stored = json.loads(text)["tokens"]
    assert [r["sha256"] for r in stored] == [hashlib.sha256(secret.encode()).hexdigest()]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all("sha256" not in r for r in TokenStore(tmp_path).listing())


def test_authenticate_when_a_live_token_then_its_identity(tmp_path: Path) -> None:
    token, record = TokenStore(tmp_path).create("ana", "operator", ADMIN)
    other, _ = TokenStore(tmp_path).create("bo", "viewer", ADMIN)

    who = TokenStore(tmp_path).authenticate(token)  # another store: read from the file

    assert who == Identity("ana", Role.OPERATOR, "token", record["id"])
    assert TokenStore(tmp_path).authenticate(f"  {other}\n").name == "bo"  # as pasted


def _wrong_secret(token: str) -> str:
    head, secret = token.rsplit("_", 1)
    return f"{head}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"


@pytest.mark.parametrize("mangle", [
    _wrong_secret,
    lambda t: t[:-1],  # one character short: malformed
    lambda t: t.replace("edk_", "edx_"),
    lambda t: "edk_" + "0" * 12 + t[16:],  # an id no token has, with a real secret
    lambda t: "not a token",
    lambda t: "",
    lambda t: None,
])
def test_authenticate_when_not_a_live_token_then_unauthenticated(tmp_path: Path, mangle: object) -> None:
    token, _ = TokenStore(tmp_path).create("ana", "admin", ADMIN)
    with pytest.raises(Unauthenticated) as caught:
        TokenStore(tmp_path).authenticate(mangle(token))  # type: ignore[operator]
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


def test_authenticate_when_revoked_then_unauthenticated_and_the_name_free_again(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token, record = store.create("ana", "lead", ADMIN)
    store.authenticate(token)

    revoked = store.revoke("ana", now=1_700_000_100)

    assert (revoked["id"], revoked["revoked_at"]) == (record["id"], 1_700_000_100)
    with pytest.raises(Unauthenticated, match="not a live token"):
        store.authenticate(token)
    with pytest.raises(Unauthenticated):
        TokenStore(tmp_path).authenticate(token)
    with pytest.raises(InvalidInput, match="no live token with this id or name"):
        store.revoke(record["id"])  # revoked already
    again, _ = store.create("ana", "viewer", ADMIN)  # a new token for the name
    assert store.authenticate(again).role is Role.VIEWER


def test_create_when_a_live_token_has_the_name_then_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.create("ana", "lead", ADMIN)
    with pytest.raises(InvalidInput, match="a live token named 'ana' exists"):
        store.create("ana", "viewer", ADMIN)
    assert [r["name"] for r in store.listing()] == ["ana"]


@pytest.mark.parametrize(("name", "role", "names"), [
    ("ana smith", "lead", "--name"), ("", "lead", "--name"), ("ana", "root", "role: got 'root'")])
def test_create_when_the_name_or_role_is_bad_then_invalid_input_and_nothing_stored(
        tmp_path: Path, name: str, role: str, names: str) -> None:
    with pytest.raises(InvalidInput, match=names):
        TokenStore(tmp_path).create(name, role, ADMIN)
    assert not (tmp_path / "tokens.json").exists()


def test_token_actions_when_not_an_admin_then_not_allowed(tmp_path: Path) -> None:
    lead = TokenStore(tmp_path).authenticate(TokenStore(tmp_path).create("ana", "lead", ADMIN)[0])
    for call in (lambda: actions.token_create(tmp_path, "eve", "admin", lead),
                 lambda: actions.token_list(tmp_path, lead),
                 lambda: actions.token_revoke(tmp_path, "ana", lead)):
        with pytest.raises(NotAllowed, match=r"ana \(lead\) may not tokens"):
            call()
    made = actions.token_create(tmp_path, "eve", "operator")  # the local user: the home's admin
    assert made["token"].startswith("edk_")
    assert made["created_by"] == ADMIN.name
    assert sorted(t["name"] for t in actions.token_list(tmp_path)["tokens"]) == ["ana", "eve"]


def test_tokens_file_when_not_a_token_file_then_invalid_input(tmp_path: Path) -> None:
    (tmp_path / "tokens.json").write_text("{}")
    with pytest.raises(InvalidInput, match="not a token file"):
        TokenStore(tmp_path).authenticate("edk_" + "0" * 12 + "_" + "A" * 43)


def test_token_create_when_quiet_then_the_token_alone_and_it_authenticates(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from execdesk.api.tokens import TokenStore
    from execdesk.cli import app

    result = CliRunner().invoke(app, ["token", "create", "--name", "bot", "--role", "viewer", "--home",
                                      str(tmp_path), "--quiet"])

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    who = TokenStore(tmp_path).authenticate(result.stdout.strip())
    assert (who.name, who.role.value) == ("bot", "viewer")

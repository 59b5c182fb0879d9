"""Who may do what on a desk (execdesk.desk.identity): identities validated where they enter, the one table of
rights, four eyes for real money — and the desk itself applying them to the requests it reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from execdesk.api import actions
from execdesk.desk.commands import queue_request
from execdesk.desk.identity import (
    PERMISSIONS,
    Identity,
    NotAllowed,
    Role,
    authorize,
    check_four_eyes,
    local_identity,
)
from execdesk.domain.events import EventKind
from execdesk.errors import InvalidInput, Refused
from execdesk.store.ledger import Ledger
from tests.conftest import BUNDLES
from tests.kit import desk_running, token_identity

GOOD = {"name": "ana", "role": "lead", "via": "token", "token_id": "0123456789ab"}


# ------------------------------------------------------------------ identities validated where they enter
def test_identity_when_round_tripped_then_the_same() -> None:
    ana = Identity.from_dict(GOOD)
    assert ana == Identity("ana", Role.LEAD, "token", "0123456789ab")
    assert Identity.from_dict(ana.as_dict()) == ana
    assert Identity.from_dict(local_identity().as_dict()) == local_identity()


@pytest.mark.parametrize(("data", "names"), [
    ({k: v for k, v in GOOD.items() if k != "name"}, "name None"),
    ({**GOOD, "name": ""}, "name: got ''"),
    ({**GOOD, "name": "ana\nrole: admin"}, "name: got"),
    ({**GOOD, "name": "a" * 65}, "name: got"),
    ({**GOOD, "role": "root"}, "role: got 'root'; expected one of viewer, operator, risk, lead, admin"),
    ({**GOOD, "role": None}, "role None"),
    ({**GOOD, "role": ["admin"]}, "role ['admin']"),
    ({**GOOD, "via": "email"}, "via 'email'; expected token or local"),
    ({k: v for k, v in GOOD.items() if k != "via"}, "via None"),
    ({**GOOD, "token_id": "../x"}, "token_id: got '../x'"),
    (None, "a request names its identity"),
    ("ana", "a request names its identity"),
    (["ana", "lead"], "a request names its identity"),
])
def test_identity_from_dict_when_bad_then_one_line_invalid_input_naming_it(data: Any, names: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Identity.from_dict(data, "pause-1-000.json: identity")
    message = str(caught.value)
    assert names in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


# ------------------------------------------------------------------ the table of rights
def test_authorize_when_the_role_lacks_the_right_then_not_allowed_exit_3_naming_the_rule() -> None:
    viewer = Identity("vic", Role.VIEWER)
    with pytest.raises(NotAllowed, match=r"^vic \(viewer\) may not pause: the pause right is admin, lead, "
                                         r"operator, risk's$") as caught:
        authorize(viewer, "pause")
    assert isinstance(caught.value, Refused)
    assert caught.value.exit_code == 3
    authorize(viewer, "read")  # reads are every role's


@pytest.mark.parametrize(("role", "allowed"), [
    (Role.VIEWER, {"read"}),
    (Role.OPERATOR, {"read", "report", "deploy", "pause", "resume", "sync_bots"}),
    (Role.RISK, {"read", "report", "deny", "pause", "kill", "rearm", "answer"}),
    (Role.LEAD, set(PERMISSIONS) - {"tokens"}),
    (Role.ADMIN, set(PERMISSIONS)),
])
def test_permissions_when_a_role_is_asked_then_exactly_its_rights(role: Role, allowed: set[str]) -> None:
    who = Identity("someone", role)
    assert {action for action in PERMISSIONS if who.may(action)} == allowed
    for action in set(PERMISSIONS) - allowed:
        with pytest.raises(NotAllowed, match=f"may not {action}"):
            authorize(who, action)


def test_authorize_when_the_action_is_unknown_then_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="action 'format_disk': unknown"):
        authorize(Identity("root", Role.ADMIN), "format_disk")
    assert not Identity("root", Role.ADMIN).may("format_disk")


def test_local_identity_when_no_token_then_the_login_name_as_admin() -> None:
    me = local_identity()
    assert me.name.startswith("local:")
    assert (me.role, me.via, me.token_id) == (Role.ADMIN, "local", None)
    assert Identity.from_dict(me.as_dict()) == me  # a valid name, whatever the login


# ------------------------------------------------------------------ four eyes for real money
def test_four_eyes_when_the_requester_approves_a_live_deployment_then_not_allowed() -> None:
    ana, bo = Identity("ana", Role.LEAD), Identity("bo", Role.LEAD)
    with pytest.raises(NotAllowed, match="STR-002-v1: four eyes for real money: ana requested this live deployment "
                                         "and cannot approve it; another lead must"):
        check_four_eyes("ana", ana, "STR-002-v1", live=True)
    check_four_eyes("ana", bo, "STR-002-v1", live=True)  # another lead
    check_four_eyes("ana", ana, "STR-002-v1", live=False)  # no real money: no second pair of eyes needed


# ------------------------------------------------------------------ the desk applies them to what it reads
def test_running_desk_when_a_request_lacks_the_right_or_four_eyes_then_refused_recorded_and_not_applied(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a live deployment waiting for approval (asked by ana); the desk "running" (its lock held)
    from execdesk.lead.deploy import approval_asked
    from tests.lead.test_deploy import _desk, _extend

    config, home = _desk(write_config, tmp_path)
    ana, vic = token_identity(home, "ana", "lead"), token_identity(home, "vic", "viewer")
    pending = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "ccxt:binance", 1, allocation=0.1, live=True,
                             identity=ana)
    request_id = pending["approval_request"]
    with Ledger.for_home(home) as ledger:
        asked = approval_asked(ledger, request_id)
    assert asked is not None
    with desk_running(home):
        # a viewer's pause: refused at once (exit 3), left for the desk to record
        with pytest.raises(NotAllowed, match="vic \\(viewer\\) may not pause"):
            actions.lifecycle(home, "pause", "STR-001-v1", "curious", 1, identity=vic)
        # ana's own approval, signed as the commands sign (past the command's own four-eyes check)
        queue_request(home, "approve", 1, {
            "action": "deploy", **asked["intent"], "by": "ana", "identity": ana.as_dict(), "command_id": "cmd-own",
            "approval": {"request_id": request_id, "decision": "approve", "by": "ana", "reason": "mine"}})
    assert len(list((home / "control").glob("*.json"))) == 2
    # Act: the desk carries on; its first bar reads both
    actions.run_config(_extend(config, "2024-03-25T00:00:00Z"), home, report=False)
    # Assert: each refused by the desk, on record with who and why; neither applied; an alert each
    with Ledger.for_home(home) as ledger:
        refused = [e.payload for e in ledger.events({EventKind.COMMAND_REFUSED})]
        decided = list(ledger.events({EventKind.APPROVAL_DECIDED}))
        alerts = [e.payload for e in ledger.events({EventKind.ALERT_RAISED}) if e.payload["code"] == "request_refused"]
        paused = ledger.state.deployments["STR-001-v1"].state_reason == "paused"
    assert sorted((p["action"], p["identity"]["name"], p["identity"]["role"], p["exit_code"]) for p in refused) == [
        ("deploy", "ana", "lead", 3), ("pause", "vic", "viewer", 3)]
    errors = {p["identity"]["name"]: p["error"] for p in refused}
    assert "vic (viewer) may not pause" in errors["vic"]
    assert "four eyes for real money: ana requested this live deployment" in errors["ana"]
    assert decided == []
    assert not paused
    assert len(alerts) == 2
    assert all("signature" not in json.dumps(a["evidence"]) for a in alerts)  # the key's work is not broadcast
    assert not list((home / "control").glob("*.json"))


def test_permissions_when_docs_api_md_is_read_then_its_table_is_the_code_table() -> None:
    # Arrange: the roles table of docs/API.md (the one the users read)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text(encoding="utf-8")
    lines = doc[doc.index("| right | viewer |"):].splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = {Role(role) for role, cell in zip(header[1:], cells[1:], strict=True) if cell == "yes"}
    # Assert
    assert table == {action: set(roles) for action, roles in PERMISSIONS.items()}

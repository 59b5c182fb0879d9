"""Who may do what on a desk: identities, roles and the one table of their rights.

Every command the desk applies carries an :class:`Identity` — a token's (authenticated by the REST API, the agent
tools or the CLI with ``--token``, see :mod:`execdesk.api.tokens`) or the local user's (the CLI without a token:
whoever can write the home's files) — and is authorized here, by the desk, when it is applied: on a stopped desk by
the command itself, on a running one by the loop when it reads the request (signed with the home's key, see
:mod:`execdesk.desk.commands`). A tool's prompt cannot widen a role: the table below is the only place rights
are granted.

Four eyes for real money: whoever requested a live deployment cannot approve it (:func:`check_four_eyes`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from execdesk.errors import InvalidInput, Refused


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    RISK = "risk"
    LEAD = "lead"
    ADMIN = "admin"


_V, _O, _R, _L, _A = Role.VIEWER, Role.OPERATOR, Role.RISK, Role.LEAD, Role.ADMIN

#: THE table: which roles may take each action. Reads are every role's; ``deploy`` only *requests* a deployment
#: (its gates run when it is applied, and a real-money one waits for a human's approval); ``approve`` is the
#: lead's; lifting a HALT (``rearm``) the risk manager's or the lead's; tokens are the admin's.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "read": frozenset({_V, _O, _R, _L, _A}),
    "report": frozenset({_O, _R, _L, _A}),
    "deploy": frozenset({_O, _L, _A}),
    "approve": frozenset({_L, _A}),
    "deny": frozenset({_R, _L, _A}),
    "pause": frozenset({_O, _R, _L, _A}),
    "resume": frozenset({_O, _L, _A}),
    "remove": frozenset({_L, _A}),
    "rollback": frozenset({_L, _A}),
    "kill": frozenset({_R, _L, _A}),
    "rearm": frozenset({_R, _L, _A}),
    "sync_bots": frozenset({_O, _L, _A}),
    "answer": frozenset({_R, _L, _A}),  # an emergency decision request (a ladder step left to a human)
    "tokens": frozenset({_A}),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")


def check_name(name: str, what: str = "name") -> str:
    """A valid identity name (1-64 letters, digits, ``.``, ``_``, ``@``, ``:`` or ``-``), else :class:`InvalidInput`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"{what}: got {name!r}; expected 1-64 letters, digits, '.', '_', '@', ':' or '-'")
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"role: got {role!r}; expected one of {', '.join(r.value for r in Role)}") from None


class NotAllowed(Refused):
    """The identity's role does not carry the right the action needs (the API's 403; the CLI's exit 3)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a command is from: ``name`` (a token's name, or ``local:<user>``), its ``role``, and ``via`` (``token``
    or ``local``) with the token's id."""

    name: str
    role: Role
    via: str = "token"
    token_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role.value, "via": self.via, "token_id": self.token_id}

    @classmethod
    def from_dict(cls, data: Any, where: str = "identity") -> Identity:
        """An identity a request carries, validated where it enters."""
        if not isinstance(data, dict):
            raise InvalidInput(f"{where}: a request names its identity (name, role, via)")
        via = data.get("via")
        if via not in ("token", "local"):
            raise InvalidInput(f"{where}: via {via!r}; expected token or local")
        token_id = data.get("token_id")
        if token_id is not None:
            check_name(token_id, f"{where}.token_id")
        name, role = data.get("name"), data.get("role")
        if not isinstance(name, str) or not isinstance(role, str):
            raise InvalidInput(f"{where}: name {name!r}, role {role!r}; expected two strings")
        return cls(check_name(name, f"{where}.name"), check_role(role), via, token_id)

    def may(self, action: str) -> bool:
        return self.role in PERMISSIONS.get(action, frozenset())


def local_identity() -> Identity:
    """The local user's identity (the CLI without a token): whoever can write the home's files holds every right
    on it, so the role is ``admin``; the name is the login name."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): the uid
        import os

        user = str(os.getuid())
    safe = re.sub(r"[^A-Za-z0-9._@-]", "_", user)[:56] or "unknown"
    return Identity(f"local:{safe}", Role.ADMIN, "local")


def authorize(identity: Identity, action: str) -> None:
    """Raise :class:`NotAllowed` naming the rule unless ``identity`` may take ``action``."""
    if action not in PERMISSIONS:
        raise InvalidInput(f"action {action!r}: unknown; expected one of {', '.join(sorted(PERMISSIONS))}")
    if not identity.may(action):
        allowed = ", ".join(sorted(r.value for r in PERMISSIONS[action]))
        raise NotAllowed(f"{identity.name} ({identity.role.value}) may not {action}: the {action} right is "
                         f"{allowed}'s")


def check_four_eyes(requested_by: str, approver: Identity, deployment_id: str, live: bool) -> None:
    """Four eyes for real money: the identity that requested a live deployment cannot approve it."""
    if live and requested_by == approver.name:
        raise NotAllowed(f"{deployment_id}: four eyes for real money: {approver.name} requested this live "
                         "deployment and cannot approve it; another lead must")


def identity_of(body: dict[str, Any], where: str = "command") -> Identity:
    """The identity a command body carries (``identity``), validated."""
    return Identity.from_dict(body.get("identity"), f"{where}: identity")

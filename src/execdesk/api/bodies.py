"""The bodies of the desk's control calls — one pydantic model each, shared by the REST API
(:mod:`execdesk.api.service`) and the agent tools (:mod:`execdesk.api.agent_tools`): each validated where it
enters (unknown fields refused, ids and reasons bounded), its JSON schema published in the OpenAPI and as the
tool's input schema."""

import hashlib
import json
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from execdesk.errors import InvalidInput
from execdesk.strategy.bundle import Sizing

#: a request body is at most this many bytes (a bundle upload included)
MAX_BODY = 1 << 20
COMMAND_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

Reason = Annotated[str, Field(min_length=1, max_length=2000, description="Why (recorded with who asked).")]
CommandId = Annotated[str | None, Field(None, pattern=COMMAND_ID, description="The command's id (default: a new one); "
                                        "the same id applied twice is a no-op.")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeployBody(_Body):
    bundle: dict[str, Any] | None = Field(None, description="The validated strategy bundle itself (as its file holds "
                                          "it); or name an inbox entry")
    inbox: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                              description="A bundle Validation left in HOME/inbox/")
    venue: str = Field("paper", max_length=100, description="paper, ccxt:<exchange> or freqtrade")
    live: bool = Field(False, description="ccxt only: real money (waits for another lead's approval)")
    allocation: float = Field(0.10, gt=0, le=1, description="Fraction of portfolio equity asked for")
    at: str | None = Field(None, max_length=40, description="Start trading at this ISO 8601 time")
    positions: Literal["hand_over", "close"] = "hand_over"
    reason: str = Field("requested", max_length=2000)
    sizing: Sizing | None = Field(None, description="This deployment's sizing over the bundle's (the bundle's sizing "
                                  "schema: method fixed_fractional, kelly or volatility_target and its settings)")
    command_id: CommandId = None

    def own_sizing(self) -> dict[str, Any] | None:
        """The sizing block as given (the settings named, no defaults filled in)."""
        return self.sizing.model_dump(mode="json", exclude_none=True) if self.sizing is not None else None


class DecisionBody(_Body):
    request_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    reason: Reason
    command_id: CommandId = None


class LifecycleBody(_Body):
    deployment: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    reason: Reason
    command_id: CommandId = None


class RollbackBody(_Body):
    strategy: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    reason: Reason
    positions: Literal["hand_over", "close"] = "hand_over"
    command_id: CommandId = None


class KillBody(_Body):
    reason: Reason
    command_id: CommandId = None


class RearmBody(_Body):
    reason: Reason
    deployment: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    command_id: CommandId = None


class ReportBody(_Body):
    deployment: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def bundle_path(home: Path, body: DeployBody) -> Path:
    """Where the deploy's bundle is read from: an upload, written under ``HOME/uploads/`` and taken through intake
    now, or an inbox entry (by name, inside ``HOME/inbox/``). :class:`InvalidInput` (422) naming what is wrong."""
    from execdesk.strategy import load_bundle  # (the bundle schema, loaded on a deploy only)

    if (body.bundle is None) == (body.inbox is None):
        raise InvalidInput("deploy: give the bundle itself (bundle) or an inbox entry's name (inbox), one of them")
    if body.inbox is not None:
        path = home / "inbox" / body.inbox
        if not path.exists() or path.is_symlink() or not path.resolve().is_relative_to((home / "inbox").resolve()):
            raise InvalidInput(f"inbox: no entry {body.inbox!r} in {home / 'inbox'}")
    else:
        raw = json.dumps(body.bundle, sort_keys=True, default=str).encode()
        folder = home / "uploads"
        folder.mkdir(exist_ok=True)
        path = folder / f"bundle-{hashlib.sha256(raw).hexdigest()[:16]}.json"
        if not path.exists():
            temp = path.with_name(f".tmp-{threading.get_ident()}-{path.name}")
            temp.write_bytes(raw)
            try:
                load_bundle(temp)  # intake, now: a bundle that does not validate is a 422 naming what is wrong
            except InvalidInput as exc:
                temp.unlink()
                raise InvalidInput(str(exc).replace(str(temp), "bundle")) from None
            temp.replace(path)
            return path
    load_bundle(path)
    return path

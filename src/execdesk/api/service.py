"""``execdesk serve``: the desk as a service — a FastAPI app over one home (published OpenAPI at ``/openapi.json``).

Reads (``GET /api/...``) come from a :class:`~execdesk.api.view.DeskView` that follows the ledger; control calls
(``POST /api/commands/<action>``) are the desk's own commands (:mod:`execdesk.api.actions`) with the caller's
identity: each returns its command id at once (202) and runs on one worker thread — applied at once on a stopped
desk, queued (signed) for a running one, which applies it at its next bar — its outcome at
``GET /api/commands/<id>`` and on the event stream (``GET /api/stream``, server-sent events resumable from an event
sequence number). Every route but ``/api/health`` needs ``Authorization: Bearer <token>`` (401 without a live
token) and the right its role carries (403 naming the rule, :data:`execdesk.desk.identity.PERMISSIONS`). The app
never writes the ledger itself and never blocks the desk's loop: a running desk only ever sees request files.

Annotations here are evaluated as the module runs (no ``from __future__ import annotations``): FastAPI reads the
routes' parameter types, some of them bound to one app's tokens.
"""

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from execdesk import __version__
from execdesk.api.bodies import (
    COMMAND_ID,
    MAX_BODY,
    DecisionBody,
    DeployBody,
    KillBody,
    LifecycleBody,
    RearmBody,
    ReportBody,
    RollbackBody,
    bundle_path,
)
from execdesk.api.tokens import TokenStore, Unauthenticated
from execdesk.api.view import STREAM_KINDS, DeskView, NotFound
from execdesk.desk.identity import PERMISSIONS, Identity, NotAllowed, authorize
from execdesk.domain.events import EventKind
from execdesk.errors import ExecdeskError, InvalidInput, Refused

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**62)]
After = Annotated[int, Query(ge=0, le=2**62, description="Events after this sequence number")]
DepQ = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


class Accepted(BaseModel):
    command_id: str
    action: str
    status: str
    outcome: str = Field(description="Where the outcome is read (poll), also on /api/stream")


class Commands:
    """The control calls' worker: one thread, so commands run one after the other (as on the CLI); each one's
    outcome kept by its id (applied, queued, refused — with the rule —, invalid or failed)."""

    def __init__(self, view: DeskView) -> None:
        self.view = view
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="execdesk-command")
        self._outcomes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def depth(self) -> int:
        """Commands accepted and not yet done (the command queue's depth)."""
        with self._lock:
            return sum(1 for o in self._outcomes.values() if o["status"] in ("accepted", "running"))

    def submit(self, action: str, command_id: str, run: Callable[[], dict[str, Any]]) -> Accepted:
        with self._lock:
            if command_id in self._outcomes and self._outcomes[command_id]["status"] in ("accepted", "running"):
                return Accepted(command_id=command_id, action=action, status="accepted",
                                outcome=f"/api/commands/{command_id}")
            self._outcomes[command_id] = {"command_id": command_id, "action": action, "status": "accepted",
                                          "accepted_at": time.time()}
        self._pool.submit(self._run, command_id, run)
        return Accepted(command_id=command_id, action=action, status="accepted", outcome=f"/api/commands/{command_id}")

    def _run(self, command_id: str, run: Callable[[], dict[str, Any]]) -> None:
        self._set(command_id, status="running")
        fields: dict[str, Any]
        try:
            result = run()
        except NotAllowed as exc:
            fields = {"status": "refused", "error": str(exc), "rule": "role", "http": 403}
        except Refused as exc:
            fields = {"status": "refused", "error": str(exc), "rule": "gate", "http": 409}
        except InvalidInput as exc:
            fields = {"status": "invalid", "error": str(exc), "http": 422}
        except Exception as exc:  # an internal error: the outcome says so; the service carries on
            fields = {"status": "failed", "error": f"internal error: {type(exc).__name__}: {exc}", "http": 500}
        else:
            status = "queued" if "queued" in result else "applied"
            if result.get("already_applied"):
                status = "already_applied"
            fields = {"status": status, "result": result}
        try:  # what the command recorded (applied, or refused) is the view's before its outcome is read
            self.view.refresh(force=True)
        finally:
            self._set(command_id, **fields)

    def _set(self, command_id: str, **fields: Any) -> None:
        with self._lock:
            self._outcomes[command_id].update(fields, updated_at=time.time())

    def outcome(self, command_id: str) -> dict[str, Any] | None:
        with self._lock:
            mine = dict(self._outcomes[command_id]) if command_id in self._outcomes else None
        recorded = self.view.command(command_id)
        if mine is None:
            return recorded
        if mine["status"] == "queued" and recorded is not None:  # the running desk applied (or refused) it
            mine.update(status=recorded["status"], seq=recorded["seq"], error=recorded.get("error"))
        elif recorded is not None:
            mine["seq"] = recorded["seq"]
        return mine

    def close(self) -> None:
        """Wait for the commands accepted; a later start of the app (its lifespan again) gets a fresh worker."""
        pool, self._pool = self._pool, ThreadPoolExecutor(max_workers=1, thread_name_prefix="execdesk-command")
        pool.shutdown(wait=True)


def _error(status: int, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(exc).split()), "type": type(exc).__name__}, status_code=status)


def create_app(home: Path, db_url: str | None = None, view: DeskView | None = None) -> FastAPI:
    """The service for ``home`` (its desk must exist: :class:`InvalidInput` otherwise)."""
    from execdesk.api import actions
    from execdesk.desk.commands import new_command_id

    view = view or DeskView(home, db_url)
    tokens = TokenStore(home)
    commands = Commands(view)
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        commands.close()  # the commands accepted are done before the service stops

    app = FastAPI(title="execdesk", version=__version__, description=__doc__, lifespan=lifespan,
                  openapi_tags=[{"name": "read"}, {"name": "control"}, {"name": "identity"}])
    app.state.view, app.state.commands, app.state.home, app.state.tokens = view, commands, home, tokens
    app.state.db_url = db_url

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Any]) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
        if request.method in ("POST", "PUT", "PATCH") and length is None:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
            request._body = body  # read once, bounded
        return await call_next(request)

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(_r: Request, exc: Unauthenticated) -> JSONResponse:
        response = _error(401, exc)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def answer_with(status: int) -> Callable[[Request, Exception], Any]:
        async def handler(_r: Request, exc: Exception) -> JSONResponse:
            return _error(status, exc)

        return handler

    # the desk's errors as HTTP statuses (the most specific class wins: NotAllowed is a Refused, NotFound an
    # InvalidInput)
    for kind, code in ((NotAllowed, 403), (NotFound, 404), (Refused, 409), (InvalidInput, 422),
                         (ExecdeskError, 500)):
        app.add_exception_handler(kind, answer_with(code))

    def identity(authorization: Annotated[str | None, Header(description="Bearer <token>")] = None) -> Identity:
        if authorization is None or not authorization.startswith("Bearer "):
            raise Unauthenticated("no token: send 'Authorization: Bearer <token>' (execdesk token create)")
        return tokens.authenticate(authorization.removeprefix("Bearer "))

    def right(name: str) -> Callable[..., Identity]:
        def check(who: Annotated[Identity, Depends(identity)]) -> Identity:
            authorize(who, name)
            return who

        return check

    Reader = Annotated[Identity, Depends(right("read"))]  # noqa: N806 (a type, bound to this app's tokens)

    # ------------------------------------------------------------------------------------------------ reads
    @app.get("/api/health", tags=["read"])
    def health() -> dict[str, Any]:
        """Liveness (no token): the service's version and how far the ledger reaches."""
        return {"ok": True, "version": __version__, "events": view.refresh()}

    @app.get("/api/whoami", tags=["identity"])
    def whoami(who: Reader) -> dict[str, Any]:
        """The caller's identity and the actions its role may take."""
        return {**who.as_dict(), "may": sorted(a for a, roles in PERMISSIONS.items() if who.role in roles)}

    @app.get("/api/roles", tags=["identity"])
    def roles(_who: Reader) -> dict[str, list[str]]:
        """The table of rights: each action and the roles that may take it."""
        return {action: sorted(r.value for r in allowed) for action, allowed in PERMISSIONS.items()}

    @app.get("/api/status", tags=["read"])
    def status(_who: Reader) -> dict[str, Any]:
        """Trading state, deployments, positions, open orders, decisions waiting for a human (``execdesk status``)."""
        return view.status()

    @app.get("/api/portfolio", tags=["read"])
    def portfolio(_who: Reader) -> dict[str, Any]:
        """Equity, drawdown, exposure and the equity curve ([time, equity, drawdown] per snapshot)."""
        return view.portfolio()

    @app.get("/api/deployments", tags=["read"])
    def deployments(_who: Reader) -> dict[str, Any]:
        return {"deployments": view.status()["deployments"]}

    @app.get("/api/deployments/{deployment_id}", tags=["read"])
    def deployment(deployment_id: str, _who: Reader) -> dict[str, Any]:
        """One deployment: state, health, lifecycle, its gate timeline, its equity curve and live-vs-backtest."""
        return view.deployment(deployment_id)

    @app.get("/api/orders", tags=["read"])
    def orders(_who: Reader, limit: Limit = 100, offset: Offset = 0, deployment: DepQ = None,
               status: Annotated[str | None, Query(pattern=r"^[a-z_]{1,20}$")] = None) -> dict[str, Any]:
        return view.records("orders", limit, offset, deployment, status)

    @app.get("/api/fills", tags=["read"])
    def fills(_who: Reader, limit: Limit = 100, offset: Offset = 0, deployment: DepQ = None) -> dict[str, Any]:
        return view.records("fills", limit, offset, deployment)

    @app.get("/api/positions", tags=["read"])
    def positions(_who: Reader, limit: Limit = 100, offset: Offset = 0, deployment: DepQ = None,
                  include_closed: bool = False) -> dict[str, Any]:
        return view.records("positions", limit, offset, deployment, "all" if include_closed else None)

    @app.get("/api/alerts", tags=["read"])
    def alerts(_who: Reader, after: After = 0, limit: Limit = 100,
               level: Annotated[str | None, Query(pattern=r"^(INFO|WARNING|CRITICAL|EMERGENCY)$")] = None
               ) -> dict[str, Any]:
        return view.alerts(after, limit, level)

    @app.get("/api/gates", tags=["read"])
    def gates(_who: Reader, deployment: DepQ = None) -> dict[str, Any]:
        """Every gate result and approval (the pipeline's timeline), or one deployment's."""
        return {"gates": view.gates(deployment)}

    @app.get("/api/plans", tags=["read"])
    def plans(_who: Reader, deployment: DepQ = None) -> dict[str, Any]:
        """Every deployment request's plan (what was asked, by whom, each gate's result with its evidence), or one
        deployment's (``HOME/deployments/<id>/plans/``)."""
        return {"plans": view.plans(deployment)}

    @app.get("/api/decisions", tags=["read"])
    def decisions(_who: Reader) -> dict[str, Any]:
        """Decisions waiting for a human (approve or deny them with /api/commands/approve|deny)."""
        return {"waiting": view.status()["waiting_for_a_human"]}

    @app.get("/api/team", tags=["read"])
    def team(_who: Reader) -> dict[str, Any]:
        return view.cached("team", lambda: actions.team(home, db_url))

    @app.get("/api/events", tags=["read"])
    def events(_who: Reader, after: After = 0, limit: Limit = 100,
               kind: Annotated[list[str] | None, Query()] = None, deployment: DepQ = None) -> dict[str, Any]:
        """The ledger's events, paged by sequence number (``next_after`` for the next page)."""
        kinds = None
        if kind:
            try:
                kinds = {EventKind(k) for k in kind}
            except ValueError as exc:
                raise InvalidInput(f"kind: {exc}; expected event kinds such as order.filled") from None
        return view.events(after, limit, kinds, deployment)

    @app.get("/api/verify", tags=["read"])
    def verify(_who: Reader) -> dict[str, Any]:
        """The ledger verified in full (hash chain, projections equal to the fold; ``execdesk verify``)."""
        return actions.verify(home, db_url)

    @app.get("/api/reports", tags=["read"])
    def reports(_who: Reader) -> dict[str, Any]:
        return view.reports()

    @app.get("/api/reports/{name}/{file}", tags=["read"], response_class=FileResponse)
    def report_file(name: str, file: str, _who: Reader) -> FileResponse:
        return FileResponse(view.report_file(name, file))

    @app.get("/api/commands/{command_id}", tags=["control"])
    def command_outcome(command_id: Annotated[str, Field(pattern=COMMAND_ID)], _who: Reader) -> dict[str, Any]:
        """A command's outcome: accepted, running, applied, queued (for the running desk's next bar), refused (which
        rule), invalid or failed; once a queued command is applied the ledger's word (its event's seq)."""
        if not re.fullmatch(COMMAND_ID, command_id):
            raise NotFound(f"no command {command_id!r}")
        found = commands.outcome(command_id)
        if found is None:
            raise NotFound(f"no command {command_id!r} known to this service or the ledger")
        return found

    @app.get("/api/stream", tags=["read"], response_class=EventSourceResponse)
    async def stream(request: Request, _who: Reader, after: After | None = None,
                     last_event_id: Annotated[str | None, Header()] = None,
                     poll: Annotated[float, Query(ge=0.05, le=10)] = 0.5,
                     once: bool = False) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events: fills, alerts, gate results, state changes, command outcomes, equity snapshots —
        each with its event sequence number as id; resumable (``Last-Event-ID`` or ``after``). ``once``: what is
        there now, then the stream ends."""
        cursor = after if after is not None else int(last_event_id or "0") if (last_event_id or "").isdigit() else 0
        while True:
            data = await asyncio.to_thread(view.events, cursor, 500, set(STREAM_KINDS))
            for e in data["events"]:
                yield ServerSentEvent(id=str(e["seq"]), event=e["kind"], data=e)
                cursor = e["seq"]
            if data["next_after"] is None:
                cursor = max(cursor, data["last_seq"])
                if once:
                    return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(poll)

    # ------------------------------------------------------------------------------------------------ control
    def submit(action: str, who: Identity, command_id: str | None, run: Callable[[str], dict[str, Any]]) -> Any:
        cid = command_id or new_command_id()
        accepted = commands.submit(action, cid, lambda: run(cid))
        return JSONResponse(accepted.model_dump(), status_code=202)

    def now() -> int:
        return int(time.time())

    @app.post("/api/commands/deploy", tags=["control"], status_code=202, response_model=Accepted)
    def deploy(body: DeployBody, who: Annotated[Identity, Depends(right("deploy"))]) -> Any:
        """Request a deployment: the bundle (uploaded, or an inbox entry) goes through intake now (422 with what is
        wrong), then through the gates when the desk applies the command."""
        path = bundle_path(home, body)
        return submit("deploy", who, body.command_id, lambda cid: actions.deploy(
            home, path, body.venue, now(), body.allocation, body.live, body.at, body.positions, body.reason, db_url,
            cid, who, body.own_sizing()))

    def decision(action: str) -> Callable[..., Any]:
        def decide(body: DecisionBody, who: Annotated[Identity, Depends(right(action))]) -> Any:
            return submit(action, who, body.command_id, lambda cid: actions.decide(
                home, body.request_id, action, body.reason, now(), db_url, cid, who))

        decide.__doc__ = f"{action.capitalize()} a decision waiting for a human (a deployment's approval gate, or a " \
                         "ladder step left to a human). Four eyes: a live deployment's requester cannot approve it."
        return decide

    for action in ("approve", "deny"):
        app.post(f"/api/commands/{action}", tags=["control"], status_code=202, response_model=Accepted,
                 name=action)(decision(action))

    def lifecycle(action: str) -> Callable[..., Any]:
        def change(body: LifecycleBody, who: Annotated[Identity, Depends(right(action))]) -> Any:
            return submit(action, who, body.command_id, lambda cid: actions.lifecycle(
                home, action, body.deployment, body.reason, now(), db_url, cid, who))

        change.__doc__ = f"{action.capitalize()} one deployment."
        return change

    for action in ("pause", "resume", "remove"):
        app.post(f"/api/commands/{action}", tags=["control"], status_code=202, response_model=Accepted,
                 name=action)(lifecycle(action))

    @app.post("/api/commands/rollback", tags=["control"], status_code=202, response_model=Accepted)
    def rollback(body: RollbackBody, who: Annotated[Identity, Depends(right("rollback"))]) -> Any:
        return submit("rollback", who, body.command_id, lambda cid: actions.rollback(
            home, body.strategy, body.reason, now(), body.positions, db_url, cid, who))

    @app.post("/api/commands/kill", tags=["control"], status_code=202, response_model=Accepted)
    def kill(body: KillBody, who: Annotated[Identity, Depends(right("kill"))]) -> Any:
        """The kill switch: everything cancelled and closed at the desk's next bar, HALTED until re-armed."""
        return submit("kill", who, body.command_id,
                      lambda cid: actions.kill(home, body.reason, now(), who, cid, db_url))

    @app.post("/api/commands/rearm", tags=["control"], status_code=202, response_model=Accepted)
    def rearm(body: RearmBody, who: Annotated[Identity, Depends(right("rearm"))]) -> Any:
        """Lift a HALT or a ladder step (the desk, or one deployment)."""
        return submit("rearm", who, body.command_id, lambda cid: actions.rearm(
            home, body.reason, body.deployment, db_url, now(), cid, who))

    @app.post("/api/commands/report", tags=["control"], status_code=202, response_model=Accepted)
    def report(body: ReportBody, who: Annotated[Identity, Depends(right("report"))]) -> Any:
        """Write a new report folder (its files then at /api/reports)."""
        return submit("report", who, None, lambda _cid: actions.report(home, body.deployment, db_url))

    from execdesk.api.agent_tools import mount_mcp
    from execdesk.api.dashboard import mount_dashboard
    from execdesk.api.metrics import mount_metrics

    mount_metrics(app)
    mount_mcp(app)
    mount_dashboard(app)  # last: it serves "/"
    return app

"""Agent tools: the desk's reads and commands as MCP tools (the official ``mcp`` SDK's low-level server).

Two transports, one server (:func:`build_server`): stdio (``execdesk mcp --home H --token T``, the identity the
token's) and streamable HTTP at ``/mcp`` of ``execdesk serve`` (:func:`mount_mcp`: every HTTP request authenticated
with ``Authorization: Bearer <token>``, 401 without a live one). Each tool's arguments are a pydantic model (its
JSON schema is the tool's input schema; the control tools take the REST API's bodies).

Scoped by the token's role: a client lists only the tools its role may use, and a tool called by name outside the
role is refused naming the rule (:data:`execdesk.desk.identity.PERMISSIONS`). The limits are the desk's, not the
tools': a control tool calls the action (:mod:`execdesk.api.actions`) with the caller's identity, and the desk
authorizes it again, runs every gate and applies four eyes — a tool can request a deployment, never skip a gate,
raise a cap, approve its own live request or lift a HALT without the right. A refusal is a tool result with
``isError`` whose text names the rule or the gate; a control tool's result is the command's outcome (the action's
result, with its ``command_id`` and ``outcome``: applied, queued for a running desk, or already_applied). The
actions block (gates, backtests, the ledger): they run on worker threads, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import mcp.types as types
from fastapi import FastAPI
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from execdesk import __version__
from execdesk.api.bodies import (
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
from execdesk.desk.identity import PERMISSIONS, Identity, NotAllowed, authorize
from execdesk.errors import ExecdeskError, InvalidInput, Refused

if TYPE_CHECKING:
    from execdesk.api.view import DeskView

logger = logging.getLogger(__name__)

#: how a request's identity is found: the token's (HTTP: the request's; stdio: the one the server started with)
IdentityFor = Callable[[ServerRequestContext[Any, Any]], Identity]

_DEP = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_CMD = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
INSTRUCTIONS = (
    "execdesk, an execution desk for algorithmic crypto trading. Read tools report the desk from its ledger. "
    "Control tools request what a human could on the CLI, as your token's identity: the desk authorizes each "
    "command again, runs every gate (intake, signal generator, risk, approval, deploy, monitor) and applies four "
    "eyes for real money; a refusal comes back as a tool error naming the rule or the gate and its reason, and "
    "is recorded in the ledger. A running desk queues a command for its next bar (outcome 'queued').")


# ---------------------------------------------------------------------------------------------- arguments
class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoArgs(_Args):
    pass


class DeploymentArgs(_Args):
    deployment_id: str = Field(pattern=_DEP, description="A deployment's id, e.g. STR-001-v1")


class CommandArgs(_Args):
    command_id: str = Field(pattern=_CMD, description="A command's id (a control tool's result names it)")


class EventsArgs(_Args):
    after: int = Field(0, ge=0, le=2**62, description="Events after this sequence number (next_after pages on)")
    limit: int = Field(100, ge=1, le=1000)
    kind: list[str] | None = Field(None, max_length=50, description="Only these event kinds, e.g. order.filled")
    deployment: str | None = Field(None, pattern=_DEP)


class AlertsArgs(_Args):
    after: int = Field(0, ge=0, le=2**62, description="Alerts after this event sequence number")
    limit: int = Field(100, ge=1, le=1000)
    level: Literal["INFO", "WARNING", "CRITICAL", "EMERGENCY"] | None = None


class GatesArgs(_Args):
    deployment: str | None = Field(None, pattern=_DEP, description="One deployment's gates (default: all)")


class OrdersArgs(_Args):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**62)
    deployment: str | None = Field(None, pattern=_DEP)
    status: str | None = Field(None, pattern=r"^[a-z_]{1,20}$", description="e.g. filled, open, cancelled")


class FillsArgs(_Args):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**62)
    deployment: str | None = Field(None, pattern=_DEP)


class PositionsArgs(FillsArgs):
    include_closed: bool = False


# ---------------------------------------------------------------------------------------------- the tools
@dataclass(frozen=True)
class Desk:
    """What the tools act on: one home (its ledger followed by ``view`` for the reads)."""

    home: Path
    db_url: str | None
    view: DeskView

    @staticmethod
    def now() -> int:
        return int(time.time())


Run = Callable[[Desk, Identity, Any], dict[str, Any]]


@dataclass(frozen=True)
class AgentTool:
    """One tool: the right its caller's role must carry, its arguments' model and what it runs (blocking)."""

    name: str
    right: str
    args: type[BaseModel]
    run: Run
    description: str

    @property
    def reads(self) -> bool:
        return self.right == "read"

    def schema(self) -> types.Tool:
        kill = self.name == "kill"
        return types.Tool(
            name=self.name, title=self.name.replace("_", " ").capitalize(), description=self.description,
            input_schema=self.args.model_json_schema(),
            annotations=types.ToolAnnotations(
                read_only_hint=self.reads, destructive_hint=None if self.reads else kill or self.name == "remove",
                idempotent_hint=True if self.reads else None, open_world_hint=False),
            _meta={"execdesk/right": self.right, "execdesk/roles": sorted(r.value for r in PERMISSIONS[self.right])})


def _outcome(result: dict[str, Any], queued: bool = False) -> dict[str, Any]:
    """A command's result with its ``outcome``: applied, queued (a running desk acts at its next bar) or
    already_applied (the same command id was applied before)."""
    outcome = ("already_applied" if result.get("already_applied")
               else "queued" if queued or "queued" in result else "applied")
    return {**result, "outcome": outcome}


def _events(desk: Desk, _who: Identity, a: EventsArgs) -> dict[str, Any]:
    from execdesk.domain.events import EventKind

    kinds = None
    if a.kind:
        try:
            kinds = {EventKind(k) for k in a.kind}
        except ValueError as exc:
            raise InvalidInput(f"kind: {exc}; expected event kinds such as order.filled") from None
    return desk.view.events(a.after, a.limit, kinds, a.deployment)


def _whoami(_desk: Desk, who: Identity, _a: NoArgs) -> dict[str, Any]:
    return {**who.as_dict(), "may": sorted(a for a in PERMISSIONS if who.may(a)),
            "tools": sorted(t.name for t in TOOLS.values() if who.may(t.right))}


def _team(desk: Desk, _who: Identity, _a: NoArgs) -> dict[str, Any]:
    from execdesk.api import actions

    return dict(desk.view.cached("team", lambda: actions.team(desk.home, desk.db_url)))


def _verify(desk: Desk, _who: Identity, _a: NoArgs) -> dict[str, Any]:
    from execdesk.api import actions

    return actions.verify(desk.home, desk.db_url)


def _command(desk: Desk, _who: Identity, a: CommandArgs) -> dict[str, Any]:
    from execdesk.api.view import NotFound

    found = desk.view.command(a.command_id)
    if found is None:
        raise NotFound(f"no command {a.command_id!r} in the ledger (a queued one appears once the desk applies it)")
    return found


def _deploy(desk: Desk, who: Identity, a: DeployBody) -> dict[str, Any]:
    from execdesk.api import actions

    path = bundle_path(desk.home, a)  # intake now: a bundle that does not validate names what is wrong
    return _outcome(actions.deploy(desk.home, path, a.venue, desk.now(), a.allocation, a.live, a.at, a.positions,
                                   a.reason, desk.db_url, a.command_id, who, a.own_sizing()))


def _decide(decision: str) -> Run:
    def run(desk: Desk, who: Identity, a: DecisionBody) -> dict[str, Any]:
        from execdesk.api import actions

        return _outcome(actions.decide(desk.home, a.request_id, decision, a.reason, desk.now(), desk.db_url,
                                       a.command_id, who))

    return run


def _lifecycle(action: str) -> Run:
    def run(desk: Desk, who: Identity, a: LifecycleBody) -> dict[str, Any]:
        from execdesk.api import actions

        return _outcome(actions.lifecycle(desk.home, action, a.deployment, a.reason, desk.now(), desk.db_url,
                                          a.command_id, who))

    return run


def _rollback(desk: Desk, who: Identity, a: RollbackBody) -> dict[str, Any]:
    from execdesk.api import actions

    return _outcome(actions.rollback(desk.home, a.strategy, a.reason, desk.now(), a.positions, desk.db_url,
                                     a.command_id, who))


def _kill(desk: Desk, who: Identity, a: KillBody) -> dict[str, Any]:
    from execdesk.api import actions

    return _outcome(actions.kill(desk.home, a.reason, desk.now(), who, a.command_id, desk.db_url), queued=True)


def _rearm(desk: Desk, who: Identity, a: RearmBody) -> dict[str, Any]:
    from execdesk.api import actions

    return _outcome(actions.rearm(desk.home, a.reason, a.deployment, desk.db_url, desk.now(), a.command_id, who))


def _report(desk: Desk, _who: Identity, a: ReportBody) -> dict[str, Any]:
    from execdesk.api import actions

    return _outcome(actions.report(desk.home, a.deployment, desk.db_url))


_READS: list[AgentTool] = [
    AgentTool("status", "read", NoArgs, lambda d, _w, _a: d.view.status(),
              "The desk now: trading state (ACTIVE, HALTED...), deployments with their state and health, positions, "
              "open orders and the decisions waiting for a human."),
    AgentTool("portfolio", "read", NoArgs, lambda d, _w, _a: d.view.portfolio(),
              "Equity, drawdown, peak, exposure, cash and the equity curve ([time, equity, drawdown] per snapshot)."),
    AgentTool("deployments", "read", NoArgs, lambda d, _w, _a: {"deployments": d.view.status()["deployments"]},
              "Every deployment: strategy, version, venue, lifecycle, state, P&L, allocation, health."),
    AgentTool("deployment", "read", DeploymentArgs, lambda d, _w, a: d.view.deployment(a.deployment_id),
              "One deployment: its state, health, gate timeline, equity curve and live-vs-backtest comparison."),
    AgentTool("alerts", "read", AlertsArgs, lambda d, _w, a: d.view.alerts(a.after, a.limit, a.level),
              "Alerts raised, paged by event sequence number (next_after for the next page), optionally one level."),
    AgentTool("events", "read", EventsArgs, _events,
              "The ledger's events, paged by sequence number: pass next_after as after for the next page."),
    AgentTool("decisions", "read", NoArgs, lambda d, _w, _a: {"waiting": d.view.status()["waiting_for_a_human"]},
              "Decisions waiting for a human: a live deployment's approval, a ladder step (answer: approve/deny)."),
    AgentTool("gates", "read", GatesArgs, lambda d, _w, a: {"gates": d.view.gates(a.deployment)},
              "Every gate result and approval (the pipeline's timeline), or one deployment's."),
    AgentTool("plans", "read", GatesArgs, lambda d, _w, a: {"plans": d.view.plans(a.deployment)},
              "Each deployment request's plan: what was asked, by whom, every gate's result with its evidence."),
    AgentTool("orders", "read", OrdersArgs,
              lambda d, _w, a: d.view.records("orders", a.limit, a.offset, a.deployment, a.status),
              "Orders, paged (newest last), optionally one deployment's or one status."),
    AgentTool("fills", "read", FillsArgs, lambda d, _w, a: d.view.records("fills", a.limit, a.offset, a.deployment),
              "Fills, paged (newest last), optionally one deployment's."),
    AgentTool("positions", "read", PositionsArgs,
              lambda d, _w, a: d.view.records("positions", a.limit, a.offset, a.deployment,
                                              "all" if a.include_closed else None),
              "Open positions (closed ones too with include_closed), paged, optionally one deployment's."),
    AgentTool("team", "read", NoArgs, _team, "Each role's performance on this desk, from the ledger."),
    AgentTool("verify", "read", NoArgs, _verify,
              "The ledger verified in full: its hash chain, and the projections equal to the fold of the events."),
    AgentTool("command", "read", CommandArgs, _command,
              "A command's outcome as the ledger has it (applied or refused, with why): e.g. a queued one's."),
    AgentTool("whoami", "read", NoArgs, _whoami, "Your identity, the rights your role carries and your tools."),
]

_CONTROLS: list[AgentTool] = [
    AgentTool("deploy", "deploy", DeployBody, _deploy,
              "Request a deployment of a validated strategy bundle (the bundle itself, or an inbox entry's name). "
              "It goes through every gate: intake, signal generator, risk (which may cut the allocation or "
              "refuse), approval (a live one waits for another lead), deploy and monitor. A refusal names the gate "
              "and its reason."),
    AgentTool("approve", "approve", DecisionBody, _decide("approve"),
              "Approve a decision waiting for a human (see decisions). Four eyes: whoever requested a live "
              "deployment cannot approve it. The deploy then runs its gates again with the answer."),
    AgentTool("deny", "deny", DecisionBody, _decide("deny"), "Deny a decision waiting for a human (see decisions)."),
    AgentTool("pause", "pause", LifecycleBody, _lifecycle("pause"), "Pause one deployment (it stops opening trades)."),
    AgentTool("resume", "resume", LifecycleBody, _lifecycle("resume"), "Resume a paused deployment."),
    AgentTool("remove", "remove", LifecycleBody, _lifecycle("remove"),
              "Remove one deployment: its positions close at the desk's next bar."),
    AgentTool("rollback", "rollback", RollbackBody, _rollback, "Put a strategy back on its previous version."),
    AgentTool("kill", "kill", KillBody, _kill,
              "The kill switch: at the desk's next bar every order is cancelled and every position closed, and the "
              "desk is HALTED until someone with the right re-arms it."),
    AgentTool("rearm", "rearm", RearmBody, _rearm,
              "Lift a HALT or a drawdown ladder step (the desk's, or one deployment's)."),
    AgentTool("report", "report", ReportBody, _report,
              "Write a new report folder (the whole desk, or one deployment)."),
]

#: every tool by name
TOOLS: dict[str, AgentTool] = {t.name: t for t in (*_READS, *_CONTROLS)}


# ---------------------------------------------------------------------------------------------- the server
def _text(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=" ".join(text.split()))], is_error=True)


def _invalid_arguments(tool: str, exc: ValidationError) -> str:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in exc.errors())
    return f"invalid arguments for {tool}: {problems}"


async def call(desk: Desk, who: Identity, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
    """Run tool ``name`` as ``who``: refused naming the rule unless the role carries its right; a refusal, a bad
    argument or an error of the desk is a tool error naming it."""
    tool = TOOLS.get(name)
    if tool is None:
        yours = ", ".join(t.name for t in TOOLS.values() if who.may(t.right))
        return _error(f"unknown tool {name!r}; yours are {yours}")
    try:
        authorize(who, tool.right)  # before anything is read or written (the desk authorizes a command again)
        args = tool.args.model_validate(arguments or {})
    except NotAllowed as exc:
        return _error(f"not allowed: {exc}")
    except ValidationError as exc:
        return _error(_invalid_arguments(name, exc))
    try:
        result = await anyio.to_thread.run_sync(partial(tool.run, desk, who, args))
    except NotAllowed as exc:
        return _error(f"not allowed: {exc}")
    except Refused as exc:
        return _error(f"refused: {exc}")
    except InvalidInput as exc:
        return _error(f"invalid: {exc}")
    except ExecdeskError as exc:
        return _error(f"failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # an internal error: the caller is told, the service carries on
        logger.exception("agent tool %s failed", name)
        return _error(f"internal error: {type(exc).__name__}: {exc}")
    data = json.loads(_text(result))
    return types.CallToolResult(content=[types.TextContent(type="text", text=_text(data))], structured_content=data)


def build_server(home: Path, db_url: str | None, identity_for_request: IdentityFor,
                 view: DeskView | None = None) -> Server[Any]:
    """The agent tools of ``home`` as an MCP server; each request's identity is ``identity_for_request(ctx)``
    (raising :class:`~execdesk.api.tokens.Unauthenticated` when there is none). ``view``: the followed ledger the
    reads come from (default: a new one)."""
    from execdesk.api.view import DeskView

    desk = Desk(home, db_url, view or DeskView(home, db_url))

    def identity(ctx: ServerRequestContext[Any, Any]) -> Identity:
        try:
            return identity_for_request(ctx)
        except Unauthenticated as exc:
            raise MCPError(code=types.INVALID_REQUEST, message=str(exc)) from None

    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         _params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        who = identity(ctx)
        return types.ListToolsResult(tools=[t.schema() for t in TOOLS.values() if who.may(t.right)])

    async def call_tool(ctx: ServerRequestContext[Any, Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        return await call(desk, identity(ctx), params.name, params.arguments)

    def input_schema(name: str) -> dict[str, Any] | None:
        tool = TOOLS.get(name)
        return None if tool is None else tool.args.model_json_schema()

    server: Server[Any] = Server(
        "execdesk", version=__version__, title="execdesk agent tools", instructions=INSTRUCTIONS,
        description="The execution desk's reads and commands, scoped by the token's role",
        # the listing depends on who asks: never shared between identities, never kept
        cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
        get_tool_input_schema=input_schema, on_list_tools=list_tools, on_call_tool=call_tool)
    return server


async def serve_stdio(home: Path, db_url: str | None, token: str) -> None:
    """Serve the agent tools over this process's stdin and stdout, every request as ``token``'s identity (checked
    at each request: a token revoked meanwhile is refused from then on)."""
    from mcp.server.stdio import stdio_server

    from execdesk.api.view import DeskView

    tokens = TokenStore(home)
    tokens.authenticate(token)
    view = DeskView(home, db_url)
    try:
        server = build_server(home, db_url, lambda _ctx: tokens.authenticate(token), view)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        view.close()


# ---------------------------------------------------------------------------------------------- over HTTP
class DeskTokenVerifier:
    """The SDK's token verifier (:class:`mcp.server.auth.provider.TokenVerifier`) over the home's tokens: a live
    token's identity as an access token (its name as the client id, its token id as the subject — a session is bound
    to the token that opened it — and its role in the claims)."""

    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            who = await anyio.to_thread.run_sync(self.tokens.authenticate, token)
        except Unauthenticated:
            return None
        except ExecdeskError as exc:  # a token file that cannot be read: no token is live
            logger.warning("agent tools: tokens not readable: %s", exc)
            return None
        return AccessToken(token=f"edk_{who.token_id}", client_id=who.name, scopes=[who.role.value],
                           subject=who.token_id, claims={"role": who.role.value, "via": who.via})


def identity_of_request(ctx: ServerRequestContext[Any, Any]) -> Identity:
    """The identity of the HTTP request a message came on (authenticated by :class:`DeskTokenVerifier`)."""
    scope = getattr(ctx.request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if not isinstance(user, AuthenticatedUser):
        raise Unauthenticated("no token: send 'Authorization: Bearer <token>' (execdesk token create)")
    token = user.access_token
    return Identity.from_dict({"name": token.client_id, "role": (token.claims or {}).get("role"), "via": "token",
                               "token_id": token.subject}, "token")


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class McpEndpoint:
    """``/mcp``: the bearer token authenticated (401 without a live one, the SDK's middleware), then the session
    manager of the app's running lifespan (503 before it starts). On a loopback socket the Host header must name
    the loopback too (a DNS-rebound page cannot reach the desk through a name of its own)."""

    def __init__(self, tokens: TokenStore) -> None:
        self.manager: StreamableHTTPSessionManager | None = None
        self.app = AuthenticationMiddleware(AuthContextMiddleware(RequireAuthMiddleware(self._serve, [])),
                                            backend=BearerAuthBackend(DeskTokenVerifier(tokens)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _host_ok(scope):
            await JSONResponse({"detail": "invalid Host header for a loopback service"}, 421)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.manager is None:
            await JSONResponse({"detail": "the agent tools start with the service (its lifespan has not run)"},
                               503)(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)

    @asynccontextmanager
    async def running(self, server: Server[Any]) -> AsyncIterator[None]:
        """A session manager for one run of the app (a manager runs once; the app may be started again)."""
        manager = StreamableHTTPSessionManager(app=server, max_request_body_size=MAX_BODY)
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None


def _host_ok(scope: Scope) -> bool:
    server = scope.get("server")
    if not server or server[0] not in _LOOPBACK:
        return True
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
    return name in _LOOPBACK


def mount_mcp(app: FastAPI) -> None:
    """Serve the agent tools over streamable HTTP at ``/mcp`` (reads ``app.state.home``, ``app.state.tokens``)."""
    tokens: TokenStore = app.state.tokens
    server = build_server(app.state.home, app.state.db_url, identity_of_request, app.state.view)
    endpoint = McpEndpoint(tokens)
    app.add_route("/mcp", endpoint, include_in_schema=False)  # type: ignore[arg-type]  # (an ASGI app)
    app.state.mcp_server, app.state.mcp_endpoint = server, endpoint
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with previous(application) as state, endpoint.running(server):
            yield state

    app.router.lifespan_context = lifespan

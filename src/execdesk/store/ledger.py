"""The ledger: an append-only, hash-chained event log with projections, on SQLAlchemy 2.

SQLite (WAL) in the desk's home by default; any SQLAlchemy URL (PostgreSQL) by setting.
Events are buffered by :meth:`Ledger.record` (which also folds them into :attr:`Ledger.state`) and
written with the projections they changed in one transaction by :meth:`Ledger.flush`: the loop
flushes before every venue call, so an intent is on disk before the venue hears of it, and many rows
share one commit.

Each event's hash covers the previous hash and the event's canonical content, so a ledger whose
history was edited no longer verifies: opening it refuses it, and :meth:`Ledger.verify_chain` names the
first bad event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, make_url, select
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from execdesk.domain.events import Event, EventKind, canonical_json
from execdesk.domain.state import DeskState
from execdesk.errors import InvalidInput, LedgerError, LedgerTampered
from execdesk.store import models
from execdesk.store.projections import projection_rows

GENESIS = "0" * 64
MIGRATIONS = Path(__file__).with_name("migrations")
#: the schema revisions this code knows, oldest first; the last is Alembic's head (a test holds the two equal)
REVISIONS = ("0001", "0002", "0003", "0004")
HEAD_REVISION = REVISIONS[-1]


def sqlite_url(home: Path) -> str:
    return f"sqlite:///{(home / 'ledger.sqlite').resolve()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Python's sqlite3 opens transactions only before DML, so a schema migration's CREATE TABLEs would each commit
    # on their own (a desk killed while creating its ledger left half a schema that no restart could open): the
    # driver's own transaction handling is turned off and SQLAlchemy's begin emits BEGIN (:func:`_sqlite_begin`)
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def make_engine(url: str) -> Engine:
    """The engine for a ledger URL; on SQLite: WAL, and every transaction (a migration's DDL too) all or nothing.
    ``postgresql://`` without a driver named is psycopg 3 (``pip install 'execdesk[postgres]'``), not SQLAlchemy's
    default psycopg2."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def schema_revision(engine: Engine) -> str | None:
    """The ledger's schema revision (None: no schema yet)."""
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except SQLAlchemyError:
        return None


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent). A ledger at the newest revision already is
    left as it is without loading Alembic's machinery (opening a ledger is every command's first step)."""
    revision = schema_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is not None and revision not in REVISIONS:
        raise LedgerTampered(f"the ledger's schema is revision {revision!r}, which this execdesk does not know (it "
                             f"knows {', '.join(REVISIONS)}): written by a newer execdesk? refusing to open it")
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _safe(url: str) -> str:
    """The URL with any password masked: ledger URLs must not leak credentials into logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: say so without echoing it
        return "<unparsable database URL>"


def _scrub(text: str, url: str) -> str:
    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def chain_hash(prev: str, seq: int, content: str) -> str:
    return hashlib.sha256(f"{prev}|{seq}|{content}".encode()).hexdigest()


class Ledger:
    """The desk's ledger. Open with :meth:`open`; the fold of its events is :attr:`state`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert_events = _Prepared(engine, models.events.insert())
        self._upserts = {t: _Prepared(engine, t.insert() if t is models.commands else
                                      _upsert_statement(engine.dialect.name, t)) for t in _PROJECTIONS}
        self._buffer: list[dict[str, Any]] = []
        self._buffered: list[Event] = []  # the buffer's events, for the commit listeners
        #: told of the events of every commit, after it (the desk's side effects: alerts, messages, see
        #: :mod:`execdesk.desk.effects`); a listener that raises fails the flush *after* the commit held
        self.committed: list[Callable[[list[Event]], None]] = []
        self._last_hash = GENESIS
        self.state = DeskState()
        self._load()

    @classmethod
    def open(cls, url: str) -> Ledger:
        try:
            engine = make_engine(url)
            upgrade(engine)
            return cls(engine)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise InvalidInput(f"database URL {_safe(url)} is not usable: {_scrub(str(exc), url)}") from None
        except ImportError as exc:  # the dialect is known, its driver not installed
            hint = (" (pip install 'execdesk[postgres]' brings psycopg, for postgresql:// and postgresql+psycopg://)"
                    if url.startswith("postgresql") else "")
            raise InvalidInput(f"database URL {_safe(url)}: its driver is not installed: {exc}{hint}") from None
        except (SQLAlchemyError, ValueError) as exc:
            raise LedgerError(f"cannot open the ledger at {_safe(url)}: {exc.__class__.__name__}: "
                              f"{_scrub(str(exc), url)}") from None

    @classmethod
    def for_home(cls, home: Path, url: str | None = None) -> Ledger:
        home.mkdir(parents=True, exist_ok=True)
        return cls.open(url or sqlite_url(home))

    @property
    def head(self) -> str:
        """The hash of the last recorded event (the chain's head; all zeros for an empty ledger)."""
        return self._last_hash

    @property
    def location(self) -> str:
        """Where the ledger is: the SQLite file, or the database URL without its password."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            return str(url.database)
        return url.render_as_string(hide_password=True)

    def close(self, flush: bool = True) -> None:
        """Close the ledger; ``flush=False`` drops unflushed events, as a crash would."""
        if flush:
            self.flush()
        self._buffer.clear()
        self._buffered.clear()
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(flush=exc_type is None)

    # ---------------------------------------------------------------- writing
    def record(self, event: Event) -> Event:
        """Append ``event`` (buffered until :meth:`flush`) and fold it into :attr:`state`."""
        seq = self.state.last_seq + 1
        stamped = Event(event.time, event.kind, event.payload, event.deployment_id, seq)
        payload = canonical_json(stamped.payload)
        self._last_hash = chain_hash(self._last_hash, seq, stamped.content(payload))
        self.state.dirty.add(("desk", None))  # desk.last_seq: how far the projections reach
        self._buffer.append({"seq": seq, "time": stamped.time, "kind": stamped.kind.value,
                             "deployment_id": stamped.deployment_id, "payload": payload,
                             "hash": self._last_hash})
        if self.committed:
            self._buffered.append(stamped)
        self.state.apply(stamped)
        return stamped

    @property
    def pending(self) -> int:
        """Events recorded but not yet flushed."""
        return len(self._buffer)

    def flush(self) -> None:
        """Write buffered events and the projections they touched, in one transaction; then tell the
        :attr:`committed` listeners which events it held."""
        if not self._buffer and not self.state.dirty:
            return
        rows = projection_rows(self.state, self.state.dirty)
        try:
            with self.engine.begin() as conn:
                if self._buffer:
                    self._insert_events.run(conn, self._buffer)
                for table, table_rows in rows.items():
                    if table_rows:
                        self._upserts[table].run(conn, table_rows)
        except IntegrityError as exc:  # a command id taken in twice (two writers raced): nothing was written
            raise InvalidInput("the ledger refused the write: a key it holds once was written twice (a command "
                               f"applied twice?): {str(exc.orig).splitlines()[0]}") from None
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger write failed: {exc.__class__.__name__}: {exc}") from exc
        self._buffer.clear()
        self.state.dirty.clear()
        done, self._buffered = self._buffered, []
        if done:
            for listener in self.committed:
                listener(done)

    # ---------------------------------------------------------------- reading
    def events(self, kinds: set[EventKind] | None = None, deployment_id: str | None = None,
               batch: int = 5000) -> Iterator[Event]:
        """All recorded (flushed) events in order, optionally filtered."""
        query = select(models.events).order_by(models.events.c.seq)
        if kinds:
            query = query.where(models.events.c.kind.in_([k.value for k in kinds]))
        if deployment_id is not None:
            query = query.where(models.events.c.deployment_id == deployment_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query)
            for row in result:
                yield Event(row.time, EventKind(row.kind), json.loads(row.payload), row.deployment_id, row.seq)

    def event_contents(self) -> list[tuple[int, str, str]]:
        """(seq, canonical content, hash) of every event: what determinism tests compare."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(models.events.c.seq, models.events.c.time, models.events.c.kind,
                                       models.events.c.deployment_id, models.events.c.payload,
                                       models.events.c.hash).order_by(models.events.c.seq)).all()
        return [(r.seq, f"{r.time}|{r.kind}|{r.deployment_id}|{r.payload}", r.hash) for r in rows]

    def verify_chain(self) -> int | None:
        """The seq of the first event that does not verify (edited, unreadable, or missing — also from the end, when
        the projections' ``last_seq`` is past the last event), or None if the chain is whole."""
        try:
            with self.engine.connect() as conn:
                for _event, _hash in self._verified_events(conn):
                    pass
        except LedgerTampered as exc:
            return exc.seq
        return None

    def read_projections(self) -> dict[str, list[dict[str, Any]]]:
        """The projection tables as rows (sorted by key), to compare with a rebuilt state."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for table in _PROJECTIONS:
                keys = [c.name for c in table.primary_key.columns]
                rows = [dict(r._mapping) for r in conn.execute(select(table))]
                out[table.name] = sorted(rows, key=lambda r, k=keys: tuple(str(r[c]) for c in k))  # type: ignore[misc]
        return out

    def refresh(self) -> list[Event]:
        """Fold what another process committed since this ledger last read (a reader following a running desk: the
        API), each event verified against the chain from this ledger's head; the new events, in order. Only for a
        ledger that records nothing itself."""
        if self._buffer:
            raise LedgerError("refresh: this ledger has unflushed events of its own; only a reader refreshes")
        prev, last = self._last_hash, self.state.last_seq
        fresh: list[Event] = []
        query = select(models.events).where(models.events.c.seq > last).order_by(models.events.c.seq)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                seq = int(row.seq)
                if seq != last + 1:
                    raise LedgerTampered(f"ledger {self.location}: event {last + 1} is missing (the next is {seq})",
                                         seq=last + 1)
                try:
                    event_ = Event(row.time, EventKind(row.kind), json.loads(row.payload), row.deployment_id, seq)
                except ValueError as exc:
                    raise LedgerTampered(f"ledger {self.location}: event {seq} is unreadable ({exc})",
                                         seq=seq) from None
                if row.hash != chain_hash(prev, seq, event_.content(row.payload)):
                    raise LedgerTampered(f"ledger {self.location}: event {seq} ({row.kind}) does not verify",
                                         seq=seq)
                self.state.apply(event_)
                fresh.append(event_)
                prev, last = row.hash, seq
        self.state.dirty.clear()
        self._last_hash = prev
        return fresh

    def rebuild_state(self) -> DeskState:
        """A fresh fold of every recorded event (the audit path; does not touch :attr:`state`)."""
        return DeskState.from_events(self.events())

    def _load(self) -> None:
        """Fold every event into :attr:`state`, verifying the chain on the way (the fold reads every row anyway,
        so verifying costs one hash per event): an edited, removed or inserted event is refused with
        :class:`LedgerTampered` naming the first sequence number that does not verify; nothing trades on it."""
        state, head = DeskState(), GENESIS
        with self.engine.connect() as conn:
            for event_, event_hash in self._verified_events(conn):
                state.apply(event_)
                head = event_hash
        state.dirty.clear()
        self._last_hash = head
        self.state = state

    def _verified_events(self, conn: Connection) -> Iterator[tuple[Event, str]]:
        """Every event in order with its hash, each checked against the chain before it is yielded
        (:class:`LedgerTampered`, with the first bad ``seq``, at the first that does not verify)."""
        prev, last = GENESIS, 0
        result = conn.execution_options(yield_per=5000).execute(select(models.events).order_by(models.events.c.seq))
        for row in result:
            seq = int(row.seq)
            if seq != last + 1:
                raise LedgerTampered(f"ledger {self.location}: event {last + 1} is missing (the next is {seq}); "
                                     "the ledger was edited: `execdesk verify` for the details", seq=last + 1)
            try:
                event_ = Event(row.time, EventKind(row.kind), json.loads(row.payload), row.deployment_id, seq)
            except ValueError as exc:
                raise LedgerTampered(f"ledger {self.location}: event {seq} is unreadable ({exc}); the ledger was "
                                     "edited: `execdesk verify` for the details", seq=seq) from None
            if row.hash != chain_hash(prev, seq, event_.content(row.payload)):
                raise LedgerTampered(f"ledger {self.location}: event {seq} ({row.kind}) does not verify: its "
                                     "content or hash was changed after it was written; `execdesk verify` for "
                                     "the details", seq=seq)
            yield event_, row.hash
            prev, last = row.hash, seq
        recorded = conn.execute(select(models.desk.c.value).where(models.desk.c.key == "last_seq")).scalar()
        if recorded is not None and int(recorded) > last:
            raise LedgerTampered(f"ledger {self.location}: events {last + 1}..{int(recorded)} are missing (the "
                                 "projections reach further than the events); `execdesk verify` for the details",
                                 seq=last + 1)


_PROJECTIONS: tuple[Table, ...] = (models.deployments, models.orders, models.fills, models.positions,
                                   models.balances, models.desk, models.commands)


class _Prepared:
    """A statement compiled once for the engine's dialect and run with executemany on the DBAPI cursor.

    SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself; the ledger's
    rows are plain str/int values that need none of it.
    """

    def __init__(self, engine: Engine, statement: Any) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.order: list[str] | None = list(compiled.positiontup) if compiled.positional else None

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        order = self.order
        params: list[Any] = [tuple(r[k] for k in order) for r in rows] if order is not None else rows
        conn.exec_driver_sql(self.sql, params)


def _upsert_statement(dialect: str, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE for ``table``, built once per ledger (building it is costly)."""
    keys = [c.name for c in table.primary_key.columns]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=update)

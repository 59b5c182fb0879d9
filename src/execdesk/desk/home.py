"""A desk's home folder: opening the ledger of a desk that is there (the commands' first step)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from execdesk.errors import InvalidInput

if TYPE_CHECKING:
    from execdesk.store.ledger import Ledger


def open_existing(home: Path, db_url: str | None) -> Ledger:
    """The home's ledger, which must hold a configured desk (:class:`InvalidInput` naming what is missing)."""
    from execdesk.store.ledger import Ledger, sqlite_url  # SQLAlchemy only for the commands that open a ledger

    if db_url is None and not (home / "ledger.sqlite").is_file():
        raise InvalidInput(f"{home}: no ledger here ({sqlite_url(home)}); run `execdesk run` or `execdesk demo` first")
    ledger = Ledger.for_home(home, db_url)
    if ledger.state.config is None:
        ledger.close()
        raise InvalidInput(f"the ledger at {ledger.location} holds no desk yet; run `execdesk run` first")
    return ledger

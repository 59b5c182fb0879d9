"""A desk's home folder: opening the ledger of a desk that is there (the commands' first step), and finding the
demo's home when the one named holds no desk."""

from __future__ import annotations

import os
import re
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


#: ``HOME/demo/LATEST``: the folder name (``seed-N``) of the demo run last under HOME
DEMO_LATEST = "LATEST"
_SEED_FOLDER = re.compile(r"^seed-\d{1,19}$")


def mark_latest_demo(home: Path, demo_home: Path) -> None:
    """Record ``demo_home`` (``HOME/demo/seed-N``) as the demo run last under ``home`` (written atomically)."""
    pointer = home / "demo" / DEMO_LATEST
    temp = pointer.with_name(f".{DEMO_LATEST}.{os.getpid()}.tmp")
    temp.write_text(demo_home.name + "\n", encoding="utf-8")
    temp.replace(pointer)


def resolve_home(home: Path) -> tuple[Path, bool]:
    """``home`` when it holds a ledger; otherwise, the demo's home run last under it (``HOME/demo/LATEST``) when
    that holds one — so that the commands after ``execdesk demo`` find its desk without ``--home``. The home to
    use, and whether it is the demo's found so."""
    if (home / "ledger.sqlite").is_file():
        return home, False
    try:
        name = (home / "demo" / DEMO_LATEST).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return home, False
    demo_home = home / "demo" / name
    if _SEED_FOLDER.match(name) and not demo_home.is_symlink() and (demo_home / "ledger.sqlite").is_file():
        return demo_home, True
    return home, False

"""The bundle inbox: validated strategies Validation leaves in ``HOME/inbox/``, each taken (moved to ``taken/``)
or rejected (moved to ``rejected/`` with its reason beside it) before the gated pipeline sees it."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from execdesk.errors import InvalidInput
from execdesk.strategy import load_bundle
from execdesk.strategy.bundle import SUFFIXES, is_bundle_folder

log = logging.getLogger("execdesk.liaison")


TAKEN = "taken"


REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One entry taken from the inbox: its original name, where it is now, and the reason when rejected."""

    name: str
    path: Path
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Inbox:
    """Bundles from Validation placed in ``root`` (``.yaml``/``.yml``/``.json`` files and bundle
    folders; dot-files, ``taken/``, ``rejected/`` and anything else are left alone). Validation should
    write under a dot-name and rename, so a half-written file is never taken."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def waiting(self) -> list[Path]:
        """The entries not yet taken, in name order (links and other non-regular entries too: they are
        rejected with their reason, never read)."""
        if not self.root.is_dir():
            return []
        return [p for p in sorted(self.root.iterdir(), key=lambda p: p.name)
                if not p.name.startswith(".") and p.name not in (TAKEN, REJECTED)
                and (p.is_symlink() or (not p.is_dir() and p.suffix.lower() in SUFFIXES)
                     or (p.is_dir() and is_bundle_folder(p)))]

    def take_all(self) -> list[InboxEntry]:
        """Validate each waiting entry with :func:`load_bundle` and move it to ``taken/``, or to
        ``rejected/`` with ``<name>.error.txt`` beside it. A name already there gets ``.1``, ``.2``...
        Only regular files and folders of regular files are read; a symbolic link, a FIFO or a device is
        rejected unread (the link itself is moved, never followed)."""
        entries = []
        for path in self.waiting():
            unsafe = _unsafe(path)
            try:
                if unsafe is not None:
                    raise InvalidInput(unsafe)
                load_bundle(path)
            except InvalidInput as exc:  # SpecError included
                moved = _move(path, self.root / REJECTED)
                error_file = moved.with_name(moved.name + ".error.txt")
                with error_file.open("x", encoding="utf-8") as handle:
                    handle.write(f"{exc}\n")
                log.warning("inbox: rejected %s: %s", path.name, exc)
                entries.append(InboxEntry(path.name, moved, str(exc)))
            else:
                entries.append(InboxEntry(path.name, _move(path, self.root / TAKEN)))
        return entries

    def take(self) -> list[Path]:
        """:meth:`take_all`; the paths (under ``taken/``) of the bundles taken."""
        return [entry.path for entry in self.take_all() if entry.ok]


def _unsafe(path: Path) -> str | None:
    """Why an inbox entry is not read (None: it may be): a symbolic link, anything but a regular file, or a
    folder holding one of those."""
    if path.is_symlink():
        return f"{path.name}: a symbolic link; only regular files and folders in the inbox are read"
    mode = os.lstat(path).st_mode
    if stat.S_ISDIR(mode):
        for sub in sorted(path.rglob("*")):
            sub_mode = os.lstat(sub).st_mode
            if stat.S_ISLNK(sub_mode) or not (stat.S_ISDIR(sub_mode) or stat.S_ISREG(sub_mode)):
                return (f"{path.name}: {sub.relative_to(path)} is a link or not a regular file; only regular files "
                        "and folders in the inbox are read")
        return None
    if not stat.S_ISREG(mode):
        return f"{path.name}: not a regular file (a FIFO, a socket or a device); only regular files are read"
    return None


def _move(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` under a free name (``name``, ``stem.1.suffix``, ...); never overwrites."""
    folder.mkdir(parents=True, exist_ok=True)
    for target in _names(path, folder):
        if target.with_name(target.name + ".error.txt").exists():
            continue  # a rejected entry's reason keeps its name
        if path.is_symlink() or not (path.is_file() or path.is_dir()):  # moved as it is, never followed
            if not (target.exists() or target.is_symlink()):
                path.replace(target)
                return target
            continue
        if path.is_file():
            try:
                os.link(path, target)  # exclusive: fails if the name is taken
            except FileExistsError:
                continue
            except OSError:
                if target.exists():
                    continue
                path.rename(target)
                return target
            path.unlink()
            return target
        if not target.exists():
            path.rename(target)
            return target
    raise AssertionError("unreachable")  # pragma: no cover


def _names(path: Path, folder: Path) -> Iterable[Path]:
    yield folder / path.name
    stem, suffix = (path.stem, path.suffix) if path.is_file() else (path.name, "")
    n = 1
    while True:
        yield folder / f"{stem}.{n}{suffix}"
        n += 1

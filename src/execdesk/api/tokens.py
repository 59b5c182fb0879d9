"""API tokens: ``execdesk token create --name N --role R`` (shown once), stored hashed, compared in constant time,
revocable.

A token reads ``edk_<id>_<secret>``: the id (12 hex digits) finds its record, the secret (32 random bytes,
URL-safe base64) is never stored — only its SHA-256, compared with :func:`hmac.compare_digest`. The records are
``HOME/tokens.json`` (mode 0600, replaced atomically under ``HOME/tokens.lock``): id, name, role, hash, who created
it and when, and when it was revoked. A token's identity (:class:`~execdesk.desk.identity.Identity`: its name and
role) is what the ledger records for every command it makes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from execdesk.desk.identity import Identity, Role, check_name, check_role
from execdesk.errors import InvalidInput

_TOKEN = re.compile(r"^edk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
FILE = "tokens.json"


class Unauthenticated(InvalidInput):
    """No token, or one that is not a live token of this home (the API's 401)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """The tokens of one home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / FILE
        self._cache: tuple[float, int, dict[str, dict[str, Any]]] | None = None

    # ---------------------------------------------------------------- reading
    def records(self) -> dict[str, dict[str, Any]]:
        """Every token's record by id (cached while the file is unchanged)."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (info.st_mtime, info.st_size)
        if self._cache is not None and self._cache[:2] == key:
            return self._cache[2]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            records = {str(r["id"]): dict(r) for r in data["tokens"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{self.path}: not a token file ({type(exc).__name__}: {exc})") from None
        self._cache = (key[0], key[1], records)
        return records

    def authenticate(self, token: str | None) -> Identity:
        """The identity of a live token; :class:`Unauthenticated` otherwise (never saying which part was wrong)."""
        if not token:
            raise Unauthenticated("no token: send 'Authorization: Bearer <token>' (execdesk token create)")
        match = _TOKEN.match(token.strip())
        records = self.records()
        record = records.get(match.group(1)) if match else None
        # the digest is compared even when no record matched, so the time taken does not tell which part was wrong
        expected = record["sha256"] if record else "0" * 64
        ok = hmac.compare_digest(_digest(match.group(2) if match else token), expected)
        if not ok or record is None or record.get("revoked_at") is not None:
            raise Unauthenticated("the token is not a live token of this desk (unknown, mistyped or revoked)")
        return Identity(record["name"], Role(record["role"]), "token", record["id"])

    def listing(self) -> list[dict[str, Any]]:
        """The records without their hashes."""
        return [{k: v for k, v in r.items() if k != "sha256"} for r in self.records().values()]

    # ---------------------------------------------------------------- writing
    def create(self, name: str, role: str, by: Identity, now: int | None = None) -> tuple[str, dict[str, Any]]:
        """A new token for ``name`` with ``role``: the token (shown once) and its record (without the hash)."""
        check_name(name, "--name")
        checked = check_role(role)
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = {"id": token_id, "name": name, "role": checked.value, "sha256": _digest(secret),
                  "created_at": int(time.time()) if now is None else now, "created_by": by.name, "revoked_at": None}
        with self._locked() as records:
            if any(r["name"] == name and r.get("revoked_at") is None for r in records.values()):
                raise InvalidInput(f"--name: a live token named {name!r} exists; revoke it first or choose another")
            records[token_id] = record
        return f"edk_{token_id}_{secret}", {k: v for k, v in record.items() if k != "sha256"}

    def revoke(self, which: str, now: int | None = None) -> dict[str, Any]:
        """Revoke the live token with id or name ``which``; its record (without the hash)."""
        with self._locked() as records:
            found = [r for r in records.values() if which in (r["id"], r["name"]) and r.get("revoked_at") is None]
            if not found:
                raise InvalidInput(f"token {which!r}: no live token with this id or name")
            found[0]["revoked_at"] = int(time.time()) if now is None else now
            return {k: v for k, v in found[0].items() if k != "sha256"}

    @contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        import fcntl

        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / "tokens.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cache = None
            records = {k: dict(v) for k, v in self.records().items()}
            yield records
            temp = self.path.with_name(f".{FILE}.{os.getpid()}.tmp")
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"tokens": list(records.values())}, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
            self._cache = None
        finally:
            os.close(fd)

"""A loopback Binance spot v3 for the ccxt venue's tests: recorded responses from ``fixtures/ccxt/`` (see its
README), the orders it is sent kept, every request recorded, faults injected on demand."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "ccxt"
ORDER_PATH = "/api/v3/order"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# ---------------------------------------------------------------- the fake Binance
@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    raw: str


@dataclass
class Fault:
    """A canned answer to the next request matching (method, path); ``then_serve`` answers normally
    after ``delay`` seconds instead (the request took effect; its answer came late)."""

    method: str
    path: str
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    then_serve: bool = False


class FakeBinance:
    """Binance spot v3 from recorded responses: markets, tickers, the top of each pair's book (``books``: a test
    may change one), an order book of what it was sent."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.orders: dict[str, dict[str, Any]] = {}  # clientOrderId -> order
        self._ids = 1000
        self._lock = threading.Lock()
        self._ticker = fixture("ticker_24hr")
        depth = fixture("depth")
        self._depth = depth["body"]
        self.books: dict[str, dict[str, list[list[str]]]] = depth["books"]
        trades = fixture("my_trades")
        self._trades: list[dict[str, Any]] = trades["body"]
        for o in trades["orders"]:
            self.orders[o["clientOrderId"]] = {**fixture("order")["body"], **o}
        self._errors = fixture("errors")["body"]
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeBinance:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, method: str, path: str, error: str | None = None, **kw: Any) -> None:
        """Queue a fault; ``error`` names a recorded Binance error of ``errors.json``."""
        if error is not None:
            kw.setdefault("status", self._errors[error]["status"])
            kw.setdefault("body", self._errors[error]["body"])
        self.faults.append(Fault(method, path, **kw))

    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path == ORDER_PATH]

    # ---------------------------------------------------------------- routing
    def answer(self, req: Request) -> tuple[int, dict[str, str], bytes, float]:
        with self._lock:
            self.requests.append(req)
            fault = next((f for f in self.faults if (f.method, f.path) == (req.method, req.path)), None)
            if fault is not None:
                self.faults.remove(fault)
                if not fault.then_serve:
                    body = fault.raw if fault.raw is not None else json.dumps(fault.body).encode()
                    return fault.status, fault.headers, body, fault.delay
            status, body = self._route(req)
            return status, {}, json.dumps(body).encode(), fault.delay if fault else 0.0

    def _route(self, req: Request) -> tuple[int, Any]:
        p = req.params
        match (req.method, req.path):
            case ("GET", "/api/v3/exchangeInfo"):
                return 200, fixture("exchange_info")["body"]
            case ("GET", "/api/v3/ticker/24hr"):
                last = self._ticker["last_prices"].get(p.get("symbol"))
                if last is None:
                    return self._error("invalid_symbol")
                return 200, {**self._ticker["body"], "symbol": p["symbol"], "lastPrice": last}
            case ("GET", "/api/v3/depth"):
                book = self.books.get(p.get("symbol", ""))
                if book is None:
                    return self._error("invalid_symbol")
                limit = int(p.get("limit", 100))
                return 200, {**self._depth, "bids": book["bids"][:limit], "asks": book["asks"][:limit]}
            case ("POST", "/api/v3/order"):
                return self._place(p)
            case ("GET", "/api/v3/order"):
                found = self._find(p)
                return (200, _without_fills(found)) if found else self._error("order_not_found")
            case ("DELETE", "/api/v3/order"):
                found = self._find(p)
                if found is None or found["status"] not in ("NEW", "PARTIALLY_FILLED"):
                    return self._error("unknown_order")
                found["status"] = "CANCELED"
                return 200, _without_fills(found)
            case ("GET", "/api/v3/openOrders"):
                open_ = [o for o in self.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")]
                return 200, [_without_fills(o) for o in open_ if o["symbol"] == p.get("symbol", o["symbol"])]
            case ("GET", "/api/v3/myTrades"):
                since, limit = int(p.get("startTime", 0)), int(p.get("limit", 500))
                return 200, [t for t in self._trades if t["symbol"] == p["symbol"] and t["time"] >= since][:limit]
            case ("GET", "/api/v3/account"):
                return 200, fixture("account")["body"]
        return 404, {"code": -1, "msg": f"fake binance has no {req.method} {req.path}"}

    def _error(self, name: str) -> tuple[int, Any]:
        return self._errors[name]["status"], self._errors[name]["body"]

    def _find(self, p: dict[str, str]) -> dict[str, Any] | None:
        if "origClientOrderId" in p:
            return self.orders.get(p["origClientOrderId"])
        return next((o for o in self.orders.values() if str(o["orderId"]) == p.get("orderId")), None)

    def _place(self, p: dict[str, str]) -> tuple[int, Any]:
        coid = p["newClientOrderId"]
        known = self.orders.get(coid)
        if known is not None and known["status"] in ("NEW", "PARTIALLY_FILLED"):
            return self._error("duplicate")
        self._ids += 1
        market = p["type"] == "MARKET"
        last = self._ticker["last_prices"][p["symbol"]]
        order = {**fixture("order")["body"], "symbol": p["symbol"], "orderId": self._ids, "clientOrderId": coid,
                 "side": p["side"], "type": p["type"], "origQty": p["quantity"], "price": p.get("price", "0.00000000"),
                 "stopPrice": p.get("stopPrice", "0.00000000"), "status": "FILLED" if market else "NEW",
                 "executedQty": p["quantity"] if market else "0.00000000"}
        if market:
            order["fills"] = [{"price": last, "qty": p["quantity"], "commission": "0.00000000",
                               "commissionAsset": "USDT", "tradeId": self._ids}]
        self.orders[coid] = order
        return 200, order


def _without_fills(order: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in order.items() if k != "fills"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBinance

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(url.query)) | dict(parse_qsl(body))
        req = Request(self.command, url.path, params, dict(self.headers.items()), self.path + " " + body)
        status, headers, payload, delay = self.fake.answer(req)
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    do_GET = do_POST = do_DELETE = _serve  # noqa: N815

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a host other than 127.0.0.1 fails the test."""
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] != "127.0.0.1":
            raise AssertionError(f"test tried to reach {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)

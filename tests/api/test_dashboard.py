"""The dashboard at ``/``: served by the API's own app with a strict Content-Security-Policy and nothing from elsewhere
(fast); and driven in a real browser against a real server (slow: Debian's chromium, headless, via Playwright) —
a viewer sees the HALTED desk and may not approve, another lead approves a live deployment lead-a asked for, the
desk is re-armed and one deployment paused.

Screenshots (PNG, one per step) go to ``$EXECDESK_ARTIFACTS/dashboard/`` when that variable is set, else to the
test's ``tmp_path``; their folder is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from execdesk.api.service import create_app
from tests.api.conftest import bearer, make_tokens, serving
from tests.conftest import BUNDLES
from tests.kit import desk_ledger

FINAL = ("applied", "already_applied", "refused", "invalid", "failed")


# ------------------------------------------------------------------------------------------------ fast: static
@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    desk_ledger(tmp_path / "home", "STR-001-v1", ["BTC/USDT"], Decimal(10_000)).close()
    with TestClient(create_app(tmp_path / "home")) as c:
        yield c


def _assert_strict_csp(headers: Any) -> None:
    csp = headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    assert directives.get("default-src") == ["'self'"], csp
    assert directives.get("script-src") == ["'self'"], csp
    assert directives.get("frame-ancestors") == ["'none'"], csp
    for loose in ("unsafe-inline", "unsafe-eval", "http", "*"):
        assert loose not in csp, csp
    assert headers.get("x-content-type-options") == "nosniff"


def test_dashboard_when_index_and_vendored_uplot_served_then_strict_csp_and_nothing_from_elsewhere(
        client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    _assert_strict_csp(index.headers)
    html = index.text
    assert not re.search(r"https?://", html, re.IGNORECASE), "the page names no URL outside the app"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline script (all JS in files)"
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.IGNORECASE), "no inline style or handler"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/vendor/uPlot.iife.min.js" in assets
    assert "/static/app.js" in assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        answer = client.get(asset)  # no token needed for the page's own files
        assert answer.status_code == 200, asset
        _assert_strict_csp(answer.headers)
        if not asset.startswith("/static/vendor/"):
            assert not re.search(r"https?://", answer.text, re.IGNORECASE), asset
    uplot = client.get("/static/vendor/uPlot.iife.min.js")
    assert uplot.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "uPlot (v1.6.32)" in uplot.text[:200]
    assert "MIT" in client.get("/static/vendor/LICENSE").text


def test_dashboard_when_no_token_then_page_served_but_data_refused(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/stream", params={"once": True}).status_code == 401


# ------------------------------------------------------------------------------------------------ slow: browser
def _chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright (Python) is not installed: pip install playwright (no browser download needed)")
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(found, os.X_OK):
        if os.environ.get("CI") == "true":  # CI installs it (scripts/browser.sh): a missing one is a failure
            pytest.fail("no chromium executable under CI=true (scripts/browser.sh installs it)")
        pytest.skip("no chromium executable (Debian: apt-get install chromium; scripts/browser.sh)")
    return found


def _shots(tmp_path: Path) -> Path:
    root = os.environ.get("EXECDESK_ARTIFACTS")
    folder = Path(root) / "dashboard" if root else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots: {folder}")
    return folder


def _request_live_deploy(http: Any, token: str) -> str:
    """As lead-a: upload mean_revert_bbands v2 to deploy live on ccxt:binance (it waits for another lead's
    approval); the command's outcome URL."""
    bundle = json.loads(json.dumps(yaml.safe_load((BUNDLES / "mean_revert_bbands.yaml").read_text()), default=str))
    bundle["version"] = 2
    body: dict[str, Any] = {"bundle": bundle, "venue": "ccxt:binance", "live": True, "reason": "dashboard test"}
    answer = http.post("/api/commands/deploy", json=body, headers=bearer(token))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["outcome"])


def _outcome(http: Any, url: str, token: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[str, Any] = http.get(url, headers=bearer(token)).json()
        if found["status"] in FINAL or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


@pytest.mark.slow
def test_dashboard_when_viewer_then_lead_drive_it_then_approve_rearm_and_pause_show(home: Path, tmp_path: Path
                                                                                     ) -> None:
    chromium = _chromium()
    import httpx
    from playwright.sync_api import Page, expect, sync_playwright

    tokens = make_tokens(home, "viewer", "lead-a:lead", "lead-b:lead")
    shots = _shots(tmp_path)
    step = iter(range(1, 100))
    started = time.monotonic()

    def shot(page: Page, name: str) -> None:
        page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar stays where a full-page capture expects it
        path = shots / f"{next(step):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"{time.monotonic() - started:5.1f}s {path.name}")

    def sign_in(page: Page, token: str) -> None:
        page.fill("#token-input", token)
        page.click("#login-button")
        expect(page.locator("#desk")).to_be_visible()

    def give_reason(page: Page, reason: str) -> None:
        expect(page.locator("#reason-dialog")).to_be_visible()
        page.fill("#reason-input", reason)
        page.click("#reason-ok")
        expect(page.locator("#reason-dialog")).to_be_hidden()

    def final_outcome(page: Page, action: str) -> Any:
        latest = page.locator(f'#outcomes [data-testid=outcome][data-action="{action}"]').first
        expect(latest).to_have_attribute("data-status", re.compile("^(" + "|".join(FINAL) + ")$"), timeout=30_000)
        return latest

    with serving(home) as base, httpx.Client(base_url=base, timeout=30) as http, sync_playwright() as pw:
        deploy = _request_live_deploy(http, tokens["lead-a"])  # runs on the server while the viewer looks
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "403" not in m.text
                    and "409" not in m.text else None)
            page.set_default_timeout(20_000)
            page.goto(base + "/")
            expect(page.locator("#login")).to_be_visible()
            shot(page, "login")

            # -- the viewer: four deployments, the desk HALTED (with its reason), no right to approve
            sign_in(page, tokens["viewer"])
            expect(page.locator("#whoami [data-testid=role]")).to_have_text("viewer")
            rows = page.locator("[data-testid=deployment-row]")
            expect(rows).to_have_count(4)
            for n in range(1, 5):
                row = page.locator(f'[data-testid=deployment-row][data-deployment="STR-00{n}-v1"]')
                expect(row.locator("[data-field=state]")).to_contain_text("HALTED")
            expect(page.locator("#trading-state")).to_have_text("HALTED")
            expect(page.locator("#halt-banner")).to_be_visible()
            expect(page.locator("#halt-reason")).to_contain_text("circuit_breaker")
            expect(page.locator("#portfolio-chart canvas")).to_have_count(1)
            expect(page.locator("[data-testid=alert]").first).to_be_visible()
            expect(page.locator("#stream-status")).to_have_attribute("data-mode", "live")
            for button in ("#kill-button", "#rearm-button", "[data-testid=pause-STR-001-v1]"):
                expect(page.locator(button)).to_be_disabled()
            shot(page, "viewer-halted")

            waited = _outcome(http, deploy, tokens["lead-a"])
            assert waited["status"] == "applied", waited
            assert waited["result"]["status"] == "pending_approval", waited
            request_id = waited["result"]["approval_request"]
            decision = page.locator(f'[data-testid=decision][data-request-id="{request_id}"]')
            expect(decision).to_be_visible(timeout=30_000)  # the live feed's lead.approval_requested: a refresh
            approve = decision.locator("[data-action=approve]")
            expect(approve).to_be_disabled()
            # the server is the authority: the button enabled by hand, the viewer's approve is refused (403)
            approve.evaluate("b => { b.disabled = false; }")
            approve.click()
            give_reason(page, "a viewer trying")
            expect(page.locator("#message")).to_have_attribute("data-kind", "error")
            expect(page.locator("#message")).to_contain_text("403")
            expect(page.locator("#message")).to_contain_text("may not approve")
            expect(decision).to_be_visible()
            shot(page, "viewer-approve-refused")

            # -- lead-a may approve (the button is enabled) but not this one, asked for by lead-a: four eyes
            page.click("#logout-button")
            sign_in(page, tokens["lead-a"])
            decision = page.locator(f'[data-testid=decision][data-request-id="{request_id}"]')
            decision.locator("[data-action=approve]").click()
            give_reason(page, "my own request")
            own = final_outcome(page, "approve")
            expect(own).to_have_attribute("data-status", "refused")
            expect(own).to_contain_text("four eyes")
            expect(page.locator("#message")).to_contain_text("four eyes")
            expect(decision).to_be_visible()
            shot(page, "lead-a-four-eyes")

            # -- lead-b approves what lead-a asked for
            page.click("#logout-button")
            expect(page.locator("#login")).to_be_visible()
            sign_in(page, tokens["lead-b"])
            page.reload()  # the token is the tab's (sessionStorage): still lead-b
            expect(page.locator("#whoami")).to_contain_text("lead-b")
            expect(page.locator("#whoami [data-testid=role]")).to_have_text("lead")
            decision = page.locator(f'[data-testid=decision][data-request-id="{request_id}"]')
            expect(decision.locator("[data-action=approve]")).to_be_enabled()
            decision.locator("[data-action=approve]").click()
            give_reason(page, "four eyes: checked by lead-b")
            approved = final_outcome(page, "approve")
            expect(page.locator(f'[data-testid=decision][data-request-id="{request_id}"]')).to_have_count(0)
            expect(page.locator("[data-testid=no-decisions]")).to_be_visible()
            status = approved.get_attribute("data-status")
            # the approval is recorded; on this paper desk the deploy gate then refuses a live venue (409), and
            # the outcome says so — applied where the desk trades that venue
            assert status in ("applied", "refused"), status
            expect(approved.locator("[data-testid=outcome-decision]")).to_have_text("approved by lead-b")
            if status == "refused":
                expect(approved).to_contain_text("deploy gate")
                expect(page.locator("#message")).to_contain_text("recorded: approved by lead-b")
            decided = [g for g in http.get("/api/gates", headers=bearer(tokens["viewer"])).json()["gates"]
                       if g["kind"] == "lead.approval_decided" and g["payload"]["request_id"] == request_id]
            assert [(g["payload"]["decision"], g["payload"]["by"]) for g in decided] == [("approved", "lead-b")]
            shot(page, "lead-b-approved")

            # -- re-arm the desk: the HALT is lifted, the deployments trade again
            page.click("#rearm-button")
            give_reason(page, "breaker reviewed by lead-b")
            expect(final_outcome(page, "rearm")).to_have_attribute("data-status", "applied")
            expect(page.locator("#trading-state")).to_have_text("ACTIVE")
            expect(page.locator("#halt-banner")).to_be_hidden()
            row = page.locator('[data-testid=deployment-row][data-deployment="STR-002-v1"]')
            expect(row).to_have_attribute("data-state", "ACTIVE")
            shot(page, "rearmed")

            # -- pause one deployment: it stops opening positions (REDUCING, lifecycle paused)
            row.locator("[data-action=pause]").click()
            give_reason(page, "pausing STR-002 for review")
            expect(final_outcome(page, "pause")).to_have_attribute("data-status", "applied")
            expect(row).to_have_attribute("data-lifecycle", "paused")
            expect(row.locator("[data-field=lifecycle]")).to_have_text("paused")
            expect(row.locator("[data-field=state]")).to_contain_text(re.compile("PAUSED|REDUCING"))
            expect(row.locator("[data-action=resume]")).to_be_enabled()
            expect(row.locator("[data-action=pause]")).to_be_disabled()
            shot(page, "paused")

            # -- a deployment's detail: live vs backtest, its equity, its gate timeline
            page.click("[data-testid=details-STR-001-v1]")
            expect(page.locator("#detail")).to_be_visible()
            expect(page.locator("#comparison-chart canvas")).to_have_count(1)
            expect(page.locator("#deployment-chart canvas")).to_have_count(1)
            expect(page.locator("#gate-timeline [data-testid=gate]")).to_have_count(6)
            expect(page.locator('#gate-timeline [data-gate="intake"]')).to_contain_text("passed")
            shot(page, "detail")

            # -- the kill switch asks for KILL typed out; a stopped desk acts on it at its next run's first bar
            page.click("#kill-button")
            expect(page.locator("#kill-dialog")).to_be_visible()
            page.fill("#kill-reason", "dashboard test")
            page.fill("#kill-confirm-input", "kill")
            expect(page.locator("#kill-ok")).to_be_disabled()
            page.fill("#kill-confirm-input", "KILL")
            expect(page.locator("#kill-ok")).to_be_enabled()
            page.click("#kill-ok")
            killed = final_outcome(page, "kill")
            expect(killed).to_have_attribute("data-status", re.compile("^(applied|queued)$"))
            expect(killed).to_contain_text("next bar")
            expect(page.locator("#outcomes")).not_to_contain_text("null")
            shot(page, "kill-requested")
            assert not errors, errors
        finally:
            browser.close()

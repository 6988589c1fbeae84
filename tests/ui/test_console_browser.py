"""The web console in a real browser: Playwright driving Debian's Chromium against a real
``llmos serve`` (auth required, an admin key, the real SmolLM2 model on llama.cpp).

Screenshots go to ``$LLMOS_TEST_ARTIFACTS/ui`` (default ``test-artifacts/ui``, gitignored).
Without Chromium the test is skipped, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from zorbia import TRAIN, VALID, chat_jsonl

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
MODEL = "smollm2:135m"
ADMIN_KEY = "sk-llmos-console-test-admin-0123456789abcdef"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts() -> Path:
    root = Path(os.environ.get("LLMOS_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts")
    out = root / "ui"
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def browser_path() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must have /usr/bin/chromium (.ci/chromium.sh installs it)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("console") / "home"
    port = _free_port()
    env = {
        **os.environ,
        "LLMOS_HOME": str(home),
        "LLMOS_AUTH": "required",
        "LLMOS_ADMIN_KEY": ADMIN_KEY,
        "LLMOS_N_SLOTS": "4",
        "LLMOS_N_CTX": "4096",
        "LLMOS_LOG_FORMAT": "json",
    }
    env.pop("LLMOS_DATABASE_URL", None)
    log = home.parent / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmos", "serve", "--port", str(port), "--no-default-model"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    srv = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text(errors='replace')[-4000:]}")
            try:
                if httpx.get(srv.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        r = httpx.post(
            srv.url + "/api/import",
            json={"path": str(smollm2_gguf), "model": MODEL, "stream": False},
            headers=auth,
            timeout=300,
        )
        assert r.status_code == 200, r.text
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _open_page(browser: Any, problems: list[str], *, height: int) -> Any:
    """A page whose script errors and console errors (but failed loads) land in ``problems``."""
    page = browser.new_page(viewport={"width": 1360, "height": height})
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    page.set_default_timeout(60_000)
    return page


@pytest.mark.timeout(1200)  # a real model on a shared 2-core machine
def test_sign_in_chat_and_dashboard(browser_path: Path, server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = artifacts()
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(browser_path), headless=True, args=ARGS)
        try:
            page = _open_page(browser, problems, height=860)
            page.goto(server.url + "/")  # redirects to the console

            # Auth is required: the console asks for a key first.
            expect(page.get_by_test_id("signin-form")).to_be_visible()
            page.get_by_test_id("signin-key").fill("sk-llmos-wrong-key-000000000000000000")
            page.get_by_test_id("signin-submit").click()
            expect(page.locator("#signin-error")).to_contain_text("refused")
            page.screenshot(path=str(shots / "signin.png"))
            page.get_by_test_id("signin-key").fill(ADMIN_KEY)
            page.get_by_test_id("signin-submit").click()
            expect(page.get_by_test_id("who")).to_contain_text("admin")
            expect(page.get_by_test_id("signin-form")).to_be_hidden()

            # The playground streams an answer from the real model.
            page.goto(server.url + "/ui/#/playground")
            expect(page.get_by_test_id("pg-model")).to_have_value(MODEL)
            page.get_by_test_id("pg-system").fill("You are a concise assistant.")
            page.get_by_test_id("pg-max-tokens").fill("48")
            page.get_by_test_id("pg-temperature").evaluate(
                "el => { el.value = '0'; el.dispatchEvent(new Event('input')); }"
            )
            page.get_by_test_id("pg-input").fill("What is the capital of France?")
            page.get_by_test_id("pg-send").click()
            answer = page.locator(".msg.assistant .text").last
            expect(answer).to_have_text(re.compile(r"\S"), timeout=300_000)
            expect(page.get_by_test_id("pg-status")).to_have_attribute("data-done", "true", timeout=300_000)
            expect(page.get_by_test_id("pg-status")).to_contain_text("tokens")
            assert len(answer.inner_text().strip()) > 0
            page.screenshot(path=str(shots / "playground.png"))

            # The dashboard shows the model resident, with live charts.
            page.goto(server.url + "/ui/#/dashboard")
            table = page.get_by_test_id("resident-models")
            expect(table).to_contain_text(MODEL)
            expect(table).to_contain_text("ready")
            expect(page.get_by_test_id("tile-requests")).to_contain_text("1")
            page.wait_for_timeout(4500)  # two more polls: the charts have points to draw
            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

            # Under load the scheduler view shows running and queued requests (4 slots, 6 requests).
            # Each runs 320 tokens, so the last two stay queued for seconds even on a quiet machine,
            # several of the view's 2 s polls.
            with ThreadPoolExecutor(6) as pool:
                body = {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "Count to fifty."}],
                    "max_tokens": 320,
                    "ignore_eos": True,
                }
                auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
                load = [
                    pool.submit(
                        httpx.post, server.url + "/v1/chat/completions", json=body, headers=auth, timeout=600
                    )
                    for _ in range(6)
                ]
                page.goto(server.url + "/ui/#/scheduler")
                # Requests reach the scheduler one engine step apart: on a busy machine, seconds.
                queued = page.locator("#view .badge", has_text="queued").first
                expect(queued).to_be_visible(timeout=300_000)
                expect(page.locator("#view .badge", has_text="running").first).to_be_visible()
                page.screenshot(path=str(shots / "scheduler-busy.png"), full_page=True)
                page.goto(server.url + "/ui/#/dashboard")
                expect(page.get_by_test_id("tile-requests")).to_be_visible()
                page.wait_for_timeout(2500)
                page.screenshot(path=str(shots / "dashboard-busy.png"), full_page=True)
                assert [f.result().status_code for f in load] == [200] * 6

            for view, marker in (
                ("models", "models-table"),
                ("scheduler", None),
                ("fine-tuning", None),
                ("keys", None),
                ("usage", None),
            ):
                page.goto(server.url + f"/ui/#/{view}")
                if marker:
                    expect(page.get_by_test_id(marker)).to_contain_text(MODEL)
                else:
                    expect(page.locator("#view h1")).to_be_visible()
                page.wait_for_timeout(800)
                page.screenshot(path=str(shots / f"{view}.png"), full_page=True)

            # An admin creates a key for a user; the secret is shown once.
            page.goto(server.url + "/ui/#/keys")
            form = page.get_by_test_id("key-form")
            form.locator("input[name=name]").fill("browser-user")
            form.get_by_role("button", name="Create key").click()
            user_key = page.get_by_test_id("new-key").inner_text().strip()
            assert user_key.startswith("sk-llmos-")
            expect(page.get_by_test_id("keys-table")).to_contain_text("browser-user")
            page.screenshot(path=str(shots / "keys-created.png"), full_page=True)

            # Signing out forgets the key; the user's key sees no admin pages.
            page.get_by_test_id("signout").click()
            expect(page.get_by_test_id("signin-form")).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('llmos.apiKey')") is None
            page.get_by_test_id("signin-key").fill(user_key)
            page.get_by_test_id("signin-submit").click()
            expect(page.get_by_test_id("who")).to_contain_text("local")
            expect(page.get_by_test_id("who")).not_to_contain_text("admin")
            page.goto(server.url + "/ui/#/keys")
            expect(page.get_by_test_id("keys-admin-only")).to_be_visible()
            page.goto(server.url + "/ui/#/fine-tuning")  # the key lacks the fine-tune scope
            expect(page.get_by_test_id("ft-scope")).to_contain_text("fine-tune scope")
            page.goto(server.url + "/ui/#/dashboard")
            expect(page.get_by_test_id("resident-models")).to_contain_text(MODEL)
            page.goto(server.url + "/ui/#/playground")
            expect(page.get_by_test_id("pg-model")).to_have_value(MODEL)
        finally:
            browser.close()
    assert not problems, problems


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _upload(server: Server, name: str, questions: list[str]) -> str:
    r = httpx.post(
        server.url + "/v1/files",
        headers=ADMIN,
        files={"file": (name, chat_jsonl(questions), "application/jsonl")},
        data={"purpose": "fine-tune"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _create_job(server: Server, train: str, valid: str, suffix: str, epochs: int, batch: int) -> str:
    body = {
        "model": MODEL,
        "training_file": train,
        "validation_file": valid,
        "suffix": suffix,
        "hyperparameters": {"n_epochs": epochs, "batch_size": batch, "max_seq_len": 64, "lora_rank": 4},
    }
    r = httpx.post(server.url + "/v1/fine_tuning/jobs", headers=ADMIN, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _job(server: Server, job_id: str) -> dict[str, Any]:
    r = httpx.get(server.url + f"/v1/fine_tuning/jobs/{job_id}", headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _loss_steps(server: Server, job_id: str) -> tuple[set[int], set[int]]:
    """The steps with a train loss and those with a validation loss, from every metrics event."""
    events: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"after": after} if after else {})}
        r = httpx.get(
            server.url + f"/v1/fine_tuning/jobs/{job_id}/events", headers=ADMIN, params=params, timeout=30
        )
        page = r.json()
        events += page["data"]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    metrics = [e["data"] for e in events if e["type"] == "metrics"]
    return (
        {m["step"] for m in metrics if m.get("train_loss") is not None},
        {m["step"] for m in metrics if m.get("valid_loss") is not None},
    )


def _chart_points(page: Any) -> tuple[int, int]:
    train, valid = (page.get_by_test_id("ft-loss-chart").get_attribute("data-points") or "0,0").split(",")
    return int(train), int(valid)


@pytest.mark.timeout(1800)  # two real fine-tuning jobs (torch) on a shared 2-core machine
def test_fine_tuning_jobs_with_live_loss_curves_and_cancel(browser_path: Path, server: Server) -> None:
    """Two real jobs on SmolLM2 (the trainer's process, torch): the console lists them, draws the
    first one's loss curve as it trains and cancels it (after a confirm), then shows the second
    one succeed with every loss point of its events, and links its result to the models view."""
    pytest.importorskip("peft")
    from playwright.sync_api import expect, sync_playwright

    shots = artifacts()
    problems: list[str] = []
    train = _upload(server, "zorbia.jsonl", TRAIN)
    valid = _upload(server, "zorbia-valid.jsonl", VALID)
    # One job at a time: the long one (400 steps) runs, the short one (2 steps) waits behind it.
    long_job = _create_job(server, train, valid, "long", epochs=50, batch=1)
    short_job = _create_job(server, train, valid, "short", epochs=1, batch=4)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(browser_path), headless=True, args=ARGS)
        try:
            page = _open_page(browser, problems, height=900)
            page.goto(server.url + "/ui/")
            page.get_by_test_id("signin-key").fill(ADMIN_KEY)
            page.get_by_test_id("signin-submit").click()
            expect(page.get_by_test_id("who")).to_contain_text("admin")

            # The list: both jobs, the short one queued behind the long one.
            page.goto(server.url + "/ui/#/fine-tuning")
            jobs = page.get_by_test_id("ft-jobs")
            expect(jobs).to_contain_text(long_job)
            short_row = jobs.locator("tr", has_text=short_job)
            expect(short_row).to_contain_text("queued")
            expect(jobs.locator("tr", has_text=long_job)).to_contain_text(MODEL)
            # Cancel asks first; dismissing it cancels nothing.
            dialogs: list[str] = []

            def dismiss(d: Any) -> None:
                dialogs.append(d.message)
                d.dismiss()

            page.once("dialog", dismiss)
            short_row.get_by_test_id("ft-cancel").click()
            assert dialogs and short_job in dialogs[0]
            assert _job(server, short_job)["status"] == "queued"
            page.screenshot(path=str(shots / "fine-tuning-list.png"), full_page=True)

            # The long job's detail: the curve grows while it trains (the view polls). The list's
            # rows carry status badges too, and the view changes a task after the click: the
            # detail's own badge is the one read.
            detail_status = page.get_by_test_id("ft-detail").get_by_test_id("ft-job-status")
            jobs.get_by_role("link", name=long_job).click()
            expect(detail_status).to_contain_text("running", timeout=600_000)
            page.wait_for_function(
                "() => Number((document.querySelector('[data-testid=ft-loss-chart]').dataset.points"
                " || '0').split(',')[0]) >= 10",
                timeout=600_000,
            )
            expect(page.get_by_test_id("ft-polling")).to_have_attribute("data-live", "true")
            expect(page.get_by_test_id("ft-detail")).to_contain_text("step ")
            expect(page.get_by_test_id("ft-hyperparameters")).to_contain_text("lora_rank")
            expect(page.get_by_test_id("ft-files")).to_contain_text("zorbia-valid.jsonl")
            expect(page.get_by_test_id("ft-loss-summary")).to_contain_text("train")
            assert _chart_points(page)[1] >= 1  # the validation loss before the first step
            page.screenshot(path=str(shots / "fine-tuning-running.png"))  # docs/img/console-fine-tuning.png

            page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
            page.get_by_test_id("ft-cancel").click()
            expect(page.get_by_test_id("ft-status")).to_contain_text("cancelled")
            expect(detail_status).to_contain_text("cancelled")
            expect(page.get_by_test_id("ft-polling")).to_have_attribute("data-live", "false")
            expect(page.get_by_test_id("ft-cancel")).to_have_count(0)
            assert len(dialogs) == 2 and long_job in dialogs[1]
            assert _job(server, long_job)["status"] == "cancelled"

            # The short job runs next and succeeds: every loss point of its events is drawn.
            page.goto(server.url + f"/ui/#/fine-tuning/{short_job}")
            expect(detail_status).to_contain_text("succeeded", timeout=900_000)
            expect(page.get_by_test_id("ft-polling")).to_have_attribute("data-live", "false", timeout=30_000)
            done = _job(server, short_job)
            train_steps, valid_steps = _loss_steps(server, short_job)
            assert train_steps == set(range(1, done["progress"]["total_steps"] + 1))
            assert valid_steps == {0, done["progress"]["total_steps"]}
            assert _chart_points(page) == (len(train_steps), len(valid_steps))
            expect(page.get_by_test_id("ft-events")).to_contain_text("The job has successfully completed")
            expect(page.get_by_test_id("ft-checkpoints")).to_contain_text("ckpt-step-")
            expect(page.get_by_test_id("ft-error")).to_have_count(0)
            # Polling stopped with the job: no more requests to the fine-tuning API.
            calls: list[str] = []
            page.on("request", lambda r: calls.append(r.url) if "/v1/fine_tuning/" in r.url else None)
            page.wait_for_timeout(7000)  # over two poll intervals (3 s)
            assert calls == [], calls
            page.screenshot(path=str(shots / "fine-tuning-succeeded.png"), full_page=True)

            # The result is a model: its link opens it in the models view.
            result = done["fine_tuned_model"]
            assert result and result.endswith("-ft-short")
            page.get_by_test_id("ft-result-model").click()
            expect(page.get_by_test_id("model-detail")).to_contain_text(result)
            expect(page.get_by_test_id("models-table")).to_contain_text(result)
            page.goto(server.url + "/ui/#/fine-tuning")
            expect(page.get_by_test_id("ft-jobs").locator("tr", has_text=short_job)).to_contain_text(result)
        finally:
            browser.close()
    assert not problems, problems


def test_metrics_and_logs_of_the_real_server(server: Server) -> None:
    """The real engine's request shows up in /metrics, and in the JSON log under its request id."""
    auth = {"Authorization": f"Bearer {ADMIN_KEY}", "x-request-id": "console-metrics-check"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
    r = httpx.post(server.url + "/v1/chat/completions", json=body, headers=auth, timeout=300)
    assert r.status_code == 200 and r.headers["x-request-id"] == "console-metrics-check"
    assert httpx.get(server.url + "/metrics", timeout=30).status_code == 401  # it names tenants
    metrics = httpx.get(server.url + "/metrics", headers={"Authorization": auth["Authorization"]}, timeout=30)
    assert metrics.status_code == 200
    text = metrics.text
    for needle in (
        f'llmos_requests_total{{model="{MODEL}",status="ok",tenant="local"}}',
        f'llmos_time_to_first_token_seconds_count{{model="{MODEL}"}}',
        f'llmos_queue_wait_seconds_count{{model="{MODEL}"}}',
        f'llmos_model_resident{{device="cpu",model="{MODEL}",state="ready"}} 1.0',
        f'llmos_model_memory_bytes{{kind="measured",model="{MODEL}"}}',
    ):
        assert needle in text, needle
    lines = [json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")]
    mine = [x for x in lines if x.get("request_id") == "console-metrics-check"]
    access = [x for x in mine if x["logger"] == "llmos.access"]
    assert len(access) == 1 and access[0]["status"] == 200 and access[0]["tenant"] == "local"
    assert access[0]["model"] == MODEL and ADMIN_KEY not in server.log.read_text()

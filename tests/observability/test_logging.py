"""Structured logs: the request id on every line of a request, the access log, JSON and text."""

from __future__ import annotations

import io
import json
import logging

import pytest

from llmos.config import load_config
from llmos.observability.logging import bind_request, configure_logging, reset_request

from .conftest import AppFactory

SECRET = "sk-llmos-do-not-log-me-0123456789abcdef"


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_bound_request_id_and_extras() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    log = logging.getLogger("llmos.test")
    log.info("outside")
    token = bind_request("req-123")
    try:
        log.warning("inside %d", 42, extra={"model_digest": "abc"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        reset_request(token)
    outside, inside, failed = lines(out)
    assert outside["request_id"] == "-" and outside["level"] == "INFO" and outside["logger"] == "llmos.test"
    assert inside["request_id"] == "req-123" and inside["message"] == "inside 42"
    assert inside["model_digest"] == "abc" and str(inside["time"]).endswith("+00:00")
    assert failed["request_id"] == "req-123" and "ValueError: boom" in str(failed["exc"])


@pytest.mark.usefixtures("restore_logging")
def test_text_format_and_idempotent_setup() -> None:
    out = io.StringIO()
    configure_logging("info", "text", stream=out)
    configure_logging("info", "text", stream=out)  # replaces, never duplicates
    logging.getLogger("uvicorn.error").info("uvicorn speaks")
    logging.getLogger("uvicorn.access").info("never: llmos writes its own access log")
    token = bind_request("rid-9")
    logging.getLogger("llmos.x").info("hello")
    reset_request(token)
    text = out.getvalue().splitlines()
    assert len(text) == 2
    assert text[0].endswith("INFO uvicorn.error: uvicorn speaks")
    assert text[1].endswith("INFO llmos.x [rid-9]: hello")
    with pytest.raises(ValueError):
        configure_logging("loud", "text", stream=out)


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_logging")
async def test_every_line_of_a_request_has_its_id_and_one_access_line(serve: AppFactory) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    s = await serve()
    body = {
        "model": "fake:1",
        "messages": [{"role": "user", "content": "the secret prompt"}],
        "max_tokens": 3,
    }
    r = await s.client.post(
        "/v1/chat/completions",
        json=body,
        headers={"x-llmos-tenant": "acme", "Authorization": f"Bearer {SECRET}", "x-request-id": "my-id-1"},
    )
    # The key is unknown (refused where the security service checks it): logged with its id, never the key.
    first_status = r.status_code
    assert r.headers["x-request-id"] == "my-id-1"
    r = await s.client.post("/v1/chat/completions", json=body, headers={"x-llmos-tenant": "acme"})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    records = lines(out)
    mine = [x for x in records if x["request_id"] == rid]
    access = [x for x in mine if x["logger"] == "llmos.access"]
    assert len(access) == 1
    [line] = access
    assert line["http_method"] == "POST" and line["path"] == "/v1/chat/completions" and line["status"] == 200
    assert line["tenant"] == "acme" and line["model"] == "fake:1" and isinstance(line["latency_ms"], float)
    # The model loads inside the first request that reaches it: the kernel's line carries that id.
    [loading] = [x for x in records if str(x["message"]).startswith("loading fake:1")]
    assert loading["request_id"] in ("my-id-1", rid) and loading["logger"] == "llmos.kernel.loader"
    refused = [x for x in records if x["request_id"] == "my-id-1" and x["logger"] == "llmos.access"]
    assert len(refused) == 1 and refused[0]["status"] == first_status
    assert SECRET not in out.getvalue() and "the secret prompt" not in out.getvalue()


def test_log_settings_parse_once_at_the_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_LOG_FORMAT", "json")
    monkeypatch.setenv("LLMOS_LOG_LEVEL", "debug")
    config = load_config()
    assert config.log_format == "json" and config.log_level == "DEBUG"
    monkeypatch.delenv("LLMOS_LOG_FORMAT")
    monkeypatch.setenv("LLMOS_LOG_JSON", "1")
    assert load_config().log_format == "json"
    monkeypatch.setenv("LLMOS_LOG_LEVEL", "chatty")
    with pytest.raises(ValueError):
        load_config()

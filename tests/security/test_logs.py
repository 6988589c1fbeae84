"""No API key reaches any log line, over a whole request cycle (key creation included)."""

from __future__ import annotations

import logging

import pytest

from llmos.security.redact import REDACTED, install_redaction, redact

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio


async def test_no_key_in_any_captured_log_line(
    secured: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = await secured()
    created = await s.client.post("/api/tenants", json={"name": "acme"}, headers=s.auth(s.admin_key))
    assert created.status_code == 201
    r = await s.client.post("/api/keys", json={"tenant": "acme"}, headers=s.auth(s.admin_key))
    secret = r.json()["key"]
    assert (await s.chat(secret)).status_code == 200
    assert (await s.chat(secret + "x")).status_code == 401
    assert (
        await s.client.delete(f"/api/keys/{r.json()['id']}", headers=s.auth(s.admin_key))
    ).status_code == 200
    assert (await s.chat(secret)).status_code == 401
    # Even code that logs a secret by mistake (ours or a library's) writes it redacted.
    logging.getLogger("llmos.anything").warning("got key %s", secret)
    logging.getLogger("thirdparty").info("headers: {'authorization': 'Bearer %s'}", secret)
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        logging.getLogger("llmos.x").exception("boom")

    assert caplog.records, "the cycle logged nothing: the test would prove nothing"
    for record in caplog.records:
        line = record.getMessage() + (record.exc_text or "")
        for key in (secret, s.admin_key):
            assert key not in line and key[17:] not in line, line
    assert secret not in caplog.text and s.admin_key not in caplog.text
    assert caplog.text.count(REDACTED) >= 3


def test_redact_patterns() -> None:
    install_redaction()
    assert redact("key sk-llmos-abcDEF_123-xyz here") == f"key {REDACTED} here"
    assert REDACTED in redact("Authorization: Bearer abcdefghijklmnop")
    assert "abcdefghijklmnop" not in redact("{'authorization': 'Basic abcdefghijklmnop'}")
    assert "s3cr3t-value" not in redact("LLMOS_ADMIN_KEY=s3cr3t-value")
    assert redact("nothing secret here") == "nothing secret here"


def test_structured_args_keep_their_shape(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    caplog.set_level(logging.INFO)
    # uvicorn's access formatter unpacks record.args: redaction must keep them a tuple.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/v1/models?key=sk-llmos-leakleakleak1", "1.1", 200
    )
    (record,) = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert isinstance(record.args, tuple) and len(record.args) == 5
    assert "leakleak" not in record.getMessage()

"""``client.fine_tuning`` speaks OpenAI's API; ``llmos finetune logs`` draws a loss line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from llmos.cli.finetune import _progress_line
from llmos.sdk.client import Client

JOB = {
    "id": "ftjob-1",
    "model": "smollm2:135m",
    "status": "queued",
    "fine_tuned_model": None,
    "training_file": "file-1",
    "validation_file": "file-2",
    "created_at": 1,
    "finished_at": None,
    "trained_tokens": None,
    "hyperparameters": {"n_epochs": 2},
    "error": None,
}


def test_create_uploads_both_files_then_starts_a_job(tmp_path: Path) -> None:
    seen: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append((request.method, request.url.path, body))
        if request.url.path == "/v1/files":
            return httpx.Response(200, json={"id": f"file-{len(seen)}", "object": "file"})
        return httpx.Response(200, json=JOB)

    (tmp_path / "t.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    with Client("http://x", transport=httpx.MockTransport(handler)) as client:
        job = client.fine_tuning.create(
            "smollm2:135m", tmp_path / "t.jsonl", validation=b"{}", epochs=2, merge=True, suffix="z"
        )
    assert job.id == "ftjob-1" and job.validation_file == "file-2"
    (m1, p1, b1), (_, p2, _), (m3, p3, b3) = seen
    assert (m1, p1, p2, m3, p3) == ("POST", "/v1/files", "/v1/files", "POST", "/v1/fine_tuning/jobs")
    assert b'name="purpose"\r\n\r\nfine-tune' in b1 and b'filename="t.jsonl"' in b1
    assert json.loads(b3) == {
        "model": "smollm2:135m",
        "training_file": "file-1",
        "validation_file": "file-2",
        "hyperparameters": {"n_epochs": 2, "merge": True},
        "suffix": "z",
    }


def test_the_loss_line_has_a_bar_losses_speed_and_eta() -> None:
    line = _progress_line(
        {
            "step": 5,
            "total_steps": 10,
            "train_loss": 1.23456,
            "valid_loss": 2.0,
            "tokens_per_second": 99.6,
            "eta_seconds": 12,
        }
    )
    assert line == "[##########----------] 5/10  loss 1.235  val 2.000  tok/s 100  eta s 12"

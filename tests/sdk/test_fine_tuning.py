"""``client.fine_tuning`` on both shells speaks OpenAI's fine-tuning API and follows a job's
event stream; ``llmos finetune logs`` draws a loss line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from llmos.cli.finetune import _progress_line

from .conftest import MakeClient

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


def _event(n: int, message: str, **extra: object) -> dict[str, object]:
    return {"id": f"ftevent-{n}", "created_at": n, "level": "info", "message": message, **extra}


def test_create_uploads_both_files_then_starts_a_job(tmp_path: Path, make_client: MakeClient) -> None:
    seen: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append((request.method, request.url.path, body))
        if request.url.path == "/v1/files":
            return httpx.Response(200, json={"id": f"file-{len(seen)}", "object": "file"})
        return httpx.Response(200, json=JOB)

    (tmp_path / "t.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    with make_client(transport=httpx.MockTransport(handler)) as client:
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


def test_a_file_id_is_not_uploaded_again(make_client: MakeClient) -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, json=JOB)

    with make_client(transport=httpx.MockTransport(handler)) as client:
        client.fine_tuning.create("smollm2:135m", "file-7", hyperparameters={"lora_rank": 4})
    assert paths == ["/v1/fine_tuning/jobs"]


def test_events_come_oldest_first_and_follow_reads_the_stream(make_client: MakeClient) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("stream") == "true":
            lines = [
                ": keep-alive",
                f"data: {json.dumps(_event(3, 'Step 1/2', type='metrics', data={'step': 1}))}",
                f"data: {json.dumps(_event(4, 'The job has successfully completed'))}",
                "data: [DONE]",
            ]
            return httpx.Response(200, text="\n\n".join(lines) + "\n\n")
        if request.url.path.endswith("/checkpoints"):
            ckpt = {
                "id": "ftckpt-1",
                "created_at": 2,
                "fine_tuning_job_id": "ftjob-1",
                "fine_tuned_model_checkpoint": "m:ckpt-step-2",
                "step_number": 2,
                "metrics": {"valid_loss": 1.5},
            }
            return httpx.Response(200, json={"object": "list", "data": [ckpt], "has_more": False})
        newest_first = [_event(2, "Fine-tuning job started"), _event(1, "Created fine-tuning job")]
        return httpx.Response(200, json={"object": "list", "data": newest_first, "has_more": False})

    with make_client(transport=httpx.MockTransport(handler)) as client:
        assert [e.number for e in client.fine_tuning.events("ftjob-1")] == [1, 2]
        followed = list(client.fine_tuning.follow("ftjob-1"))
        [ckpt] = client.fine_tuning.checkpoints("ftjob-1")
    assert [(e.number, e.type) for e in followed] == [(3, "metrics"), (4, "message")]
    assert followed[0].data == {"step": 1}
    assert ckpt.step_number == 2 and ckpt.metrics == {"valid_loss": 1.5}


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

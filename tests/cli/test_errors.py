from __future__ import annotations

import pytest
import typer

from llmos import errors as e
from llmos.cli.errors import exit_code, handle_errors
from llmos.sdk import errors as sdk


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (e.InvalidModelName("x"), 2),
        (e.InvalidModelFile("x"), 2),
        (e.ModelNotFound("x"), 3),
        (e.Conflict("x"), 4),
        (e.IntegrityError("x"), 5),
        (e.SourceUnavailable("x"), 6),
        (e.StorageFull("x"), 7),
        (e.EngineDeadError("x"), 12),
        (sdk.APIConnectionError("x"), 6),
        (sdk.NotFoundError("x", status_code=404), 3),
        (sdk.BadRequestError("x", status_code=400), 2),
        (sdk.ServerError("x", status_code=507), 7),
        (sdk.ServerError("x", status_code=500), 1),
        (sdk.ServerError("x", status_code=200, type="upstream_error"), 6),  # an error event in a stream
        (sdk.BadRequestError("x", status_code=200, type="invalid_request_error", code="model_not_found"), 3),
        (sdk.BadRequestError("x", status_code=200, type="invalid_request_error"), 2),
    ],
)
def test_exit_codes(exc: e.LLMOSError | sdk.LLMOSClientError, code: int) -> None:
    assert exit_code(exc) == code


def test_handle_errors_prints_the_message_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    @handle_errors
    def command() -> None:
        raise e.StorageFull("no space left on the disk; free some space")

    with pytest.raises(typer.Exit) as exc:
        command()
    assert exc.value.exit_code == 7
    assert capsys.readouterr().err.strip() == "error: no space left on the disk; free some space"

from __future__ import annotations

import pytest

from llmos.domain.training import Hyperparameters
from llmos.errors import InvalidRequest


def test_defaults_are_valid_and_round_trip() -> None:
    hp = Hyperparameters().checked()
    assert Hyperparameters.from_dict(hp.to_dict()) == hp


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"learning_rate": 0.5}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"lora_rank": 1000}, "lora_rank"),
        ({"batch_size": True}, "batch_size"),
        ({"max_seq_len": 8}, "max_seq_len"),
        ({"validation_split": 0.9}, "validation_split"),
        ({"target_modules": ["lm_head"]}, "target_modules"),
        ({"target_modules": []}, "target_modules"),
    ],
)
def test_out_of_range_names_the_field(values: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        Hyperparameters.from_dict(values)
    assert exc.value.param == f"hyperparameters.{param}"
    assert param in exc.value.message


def test_unknown_hyperparameter_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="unknown hyperparameter"):
        Hyperparameters.from_dict({"epoch": 3})


def test_target_modules_are_deduplicated() -> None:
    hp = Hyperparameters.from_dict({"target_modules": ["q_proj", "q_proj", "v_proj"]})
    assert hp.target_modules == ("q_proj", "v_proj")

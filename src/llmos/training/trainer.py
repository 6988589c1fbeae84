"""The trainer: LoRA fine-tuning with PEFT on PyTorch (CPU), run inside a job's process.

It reads the base GGUF with transformers (which dequantizes it), wraps it in a PEFT LoRA, and
runs AdamW with a linear decay over the examples of :mod:`llmos.training.examples`, reporting
progress after every optimizer step, validation loss before training and after every epoch, and
a checkpoint (the LoRA weights, safetensors) per epoch. Between optimizer steps it asks its
controller whether to go on: that is where a job pauses for inference, changes its thread count
or stops on cancel. The result is a llama.cpp adapter GGUF, or a merged GGUF when asked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from llmos.domain.training import Progress
from llmos.engine.templates import ChatTemplate
from llmos.errors import InvalidRequest, MissingDependency
from llmos.training.adapter_gguf import HeadCounts, gguf_pairs, write_adapter
from llmos.training.examples import IGNORE, Example, build_examples, read_conversations, split
from llmos.training.merge import merge_adapter
from llmos.training.messages import (
    CheckpointSaved,
    Finished,
    Note,
    ProgressReport,
    TrainerMessage,
    TrainRequest,
)


class Cancelled(Exception):
    """The manager asked the job to stop."""


class Controller(Protocol):
    def between_steps(self) -> None:
        """Block while paused; apply thread changes; raise Cancelled when told to stop."""
        ...


def require_torch() -> None:
    """Raise MissingDependency unless the training extra is installed."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            f"fine-tuning needs torch, transformers and peft ({exc.name} is missing); install them "
            "with: pip install 'llmos[train]'"
        ) from exc


def train(req: TrainRequest, control: Controller, emit: Callable[[TrainerMessage], None]) -> None:
    """Run the job to its result (a :class:`Finished` message). Raises Cancelled, InvalidRequest
    (data or model unusable) or whatever torch raised."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # the job reports its own progress, as events

    hp = req.hyperparameters
    torch.manual_seed(hp.seed)
    torch.set_num_threads(max(1, req.threads))
    emit(Note(f"loading base model ({req.architecture}) with {max(1, req.threads)} thread(s)"))
    folder, name = str(req.base_path.parent), req.base_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    control.between_steps()

    template = ChatTemplate(req.chat_template, bos_token=req.bos_token, eos_token=req.eos_token)

    def render(messages: Sequence[dict[str, Any]], generation: bool) -> str:
        return template.render(messages, add_generation_prompt=generation)

    examples = build_examples(read_conversations(req.train_path), render, tokenizer, hp.max_seq_len)
    if req.valid_path is not None:
        train_set = examples
        valid_set = build_examples(read_conversations(req.valid_path), render, tokenizer, hp.max_seq_len)
    else:
        train_set, valid_set = split(examples, hp.validation_split, hp.seed)
    if not train_set:
        raise InvalidRequest(
            f"no training example keeps an assistant token within max_seq_len={hp.max_seq_len}", param="file"
        )
    emit(Note(f"{len(train_set)} training and {len(valid_set)} validation examples"))

    config = LoraConfig(
        r=hp.lora_rank,
        lora_alpha=hp.lora_alpha,  # type: ignore[arg-type]  # PEFT annotates int; floats work
        lora_dropout=hp.lora_dropout,
        target_modules=list(hp.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(train_set) / hp.batch_size)
    total = steps_per_epoch * hp.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / total))
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0)
    order = torch.Generator().manual_seed(hp.seed)

    valid_loss = _evaluate(model, valid_set, hp.batch_size, pad, control) if valid_set else None
    emit(ProgressReport(Progress(step=0, total_steps=total, epoch=0.0, valid_loss=valid_loss)))
    step = trained = 0
    started = time.monotonic()
    train_loss: float | None = None
    for epoch in range(hp.epochs):
        model.train()
        perm = torch.randperm(len(train_set), generator=order).tolist()
        for i in range(0, len(perm), hp.batch_size):
            control.between_steps()
            batch = [train_set[j] for j in perm[i : i + hp.batch_size]]
            ids, mask, labels = _collate(batch, pad)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            trained += int(mask.sum().item())
            train_loss = float(loss.item())
            elapsed = max(time.monotonic() - started, 1e-9)
            emit(
                ProgressReport(
                    Progress(
                        step=step,
                        total_steps=total,
                        epoch=epoch + (i + len(batch)) / len(perm),
                        train_loss=train_loss,
                        tokens_per_second=trained / elapsed,
                        eta_seconds=elapsed / step * (total - step),
                        trained_tokens=trained,
                    )
                )
            )
        valid_loss = _evaluate(model, valid_set, hp.batch_size, pad, control) if valid_set else None
        metrics = {"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid_loss}
        _save_checkpoint(model, req.work_dir / f"checkpoint-{step}.safetensors", get_peft_model_state_dict)
        emit(CheckpointSaved(step=step, metrics=metrics))
        emit(
            ProgressReport(
                Progress(
                    step=step,
                    total_steps=total,
                    epoch=float(epoch + 1),
                    train_loss=train_loss,
                    valid_loss=valid_loss,
                    tokens_per_second=trained / max(time.monotonic() - started, 1e-9),
                    eta_seconds=0.0 if epoch + 1 == hp.epochs else None,
                    trained_tokens=trained,
                )
            )
        )
    control.between_steps()
    state = {k: v.detach().float().cpu().numpy() for k, v in get_peft_model_state_dict(model).items()}
    heads = HeadCounts(
        heads=int(base.config.num_attention_heads),
        kv_heads=int(getattr(base.config, "num_key_value_heads", None) or base.config.num_attention_heads),
    )
    adapter = req.work_dir / "adapter.gguf"
    write_adapter(
        adapter,
        gguf_pairs(state, req.architecture, heads),
        architecture=req.architecture,
        alpha=hp.lora_alpha,
        name=req.result_name,
    )
    final = {"train_loss": train_loss, "valid_loss": valid_loss, "trained_tokens": trained, "steps": step}
    if hp.merge:
        control.between_steps()
        emit(Note("merging the adapter into the base model"))
        merged = merge_adapter(req.base_path, adapter, req.work_dir / "merged.gguf")
        emit(Finished(path=merged, merged=True, metrics=final))
    else:
        emit(Finished(path=adapter, merged=False, metrics=final))


def _collate(batch: Sequence[Example], pad: int) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels)
    return ids, mask, labels


def _evaluate(
    model: Any, examples: Sequence[Example], batch_size: int, pad: int, control: Controller
) -> float:
    """Mean loss per labelled token over ``examples``."""
    import torch

    model.eval()
    total = 0.0
    count = 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            control.between_steps()
            ids, mask, labels = _collate(examples[i : i + batch_size], pad)
            n = int((labels[:, 1:] != IGNORE).sum().item())
            if n:
                total += float(model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()) * n
                count += n
    model.train()
    return total / max(count, 1)


def _save_checkpoint(model: Any, path: Path, state_dict: Callable[[Any], dict[str, Any]]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous() for k, v in state_dict(model).items()}, str(tmp))
    tmp.replace(path)

"""A sentence-transformers BERT model as a GGUF file that llama.cpp runs in embedding mode.

BERT encoders (all-MiniLM-L6-v2, the catalog's ``minilm:l6``, among them) run on llama.cpp
like any GGUF model once their weights, vocabulary and pooling are written in llama.cpp's BERT
layout, so embeddings (and with them ``llmos docs``) need no torch. The conversion reads the
model folder with numpy only:

- ``config.json`` (a ``BertModel``: sizes, layer count, heads, norm epsilon),
- ``model.safetensors`` (F32, F16 or BF16 tensors; names mapped by ``gguf``'s BERT tensor map;
  ``embeddings.position_ids`` and the unused pooler dropped),
- ``vocab.txt`` and ``tokenizer_config.json`` (WordPiece: a continuation ``##piece`` is written
  as ``piece`` and a word-initial ``piece`` as ``▁piece``, the special tokens as control tokens;
  lower-casing and accent stripping as the tokenizer does them),
- the pooling module's ``config.json`` (mean or CLS pooling); a ``Normalize`` module needs
  nothing: the engine L2-normalizes every vector it returns.

Every tensor is stored as F32: llama.cpp's CPU kernels embed more than twice as fast from F32
matrices as from F16 ones (5.4 against 11.8 CPU seconds for 21 inputs of 256 tokens, measured
here), and the file (87 MiB) is the model as trained. The
vectors agree with sentence-transformers' own to a cosine of 0.9999 and more on the catalog model
(``tests/embeddings/test_st_convert.py``). The file is written to a temp name and renamed, and is
derived once per model (``LoadSpec.derived_dir``), like the engine's other derived weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmos.engine.llamacpp.requantize import sweep_temps
from llmos.errors import EngineError, InvalidModelFile

logger = logging.getLogger(__name__)

CONVERSION = "st-bert-v1.f32.gguf"
"""The suffix of a converted file's name; a new conversion scheme gets a new one."""
SPECIAL_TOKENS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
_DTYPES: dict[str, Any] = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
_POOLING = {"mean": 1, "cls": 2}
"""llama.cpp's pooling types for the sentence-transformers modes it has."""
_POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_DROPPED = ("embeddings.position_ids", "pooler.")


@dataclass(frozen=True)
class BertModelFolder:
    """What the conversion reads from a sentence-transformers folder."""

    folder: Path
    config: dict[str, Any]
    tokenizer: dict[str, Any]
    pooling: str


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModelFile(f"{path.name} of the model is not readable JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}


def inspect_folder(folder: Path) -> BertModelFolder | str:
    """The folder's facts when it holds a BERT model this module converts, else why not."""
    for name in ("config.json", "model.safetensors", "vocab.txt", "modules.json"):
        if not (folder / name).is_file():
            return f"it has no {name}"
    config = _read_json(folder / "config.json")
    if config.get("model_type") != "bert":
        return f"it is a {config.get('model_type')!r} model, not BERT"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return "its position embeddings are not absolute"
    if config.get("hidden_act", "gelu") != "gelu":
        return f"its activation is {config.get('hidden_act')!r}, not gelu"
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"its modules are {kinds}, not Transformer, Pooling (and Normalize)"
    pooling_dir = next(m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Pooling"))
    pooling = _read_json(folder / pooling_dir / "config.json")
    modes = {mode for key, mode in _POOLING_MODES.items() if pooling.get(key)}
    if len(modes) != 1 or not modes <= set(_POOLING):
        return f"its pooling ({', '.join(sorted(modes)) or 'none'}) is not exactly one of mean or CLS"
    tokenizer_config = folder / "tokenizer_config.json"
    tokenizer = _read_json(tokenizer_config) if tokenizer_config.is_file() else {}
    return BertModelFolder(folder, config, tokenizer, modes.pop())


def convertible(folder: Path) -> bool:
    return isinstance(inspect_folder(folder), BertModelFolder)


def _safetensors(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """The tensors of a safetensors file as float32 arrays (memory-mapped where possible)."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as exc:
        raise InvalidModelFile(f"{path.name} is not a readable safetensors file: {exc}") from exc
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    for name, info in header.items():
        if name == "__metadata__" or name.startswith(_DROPPED):
            continue
        dtype = _DTYPES.get(str(info.get("dtype")))
        if dtype is None:
            raise InvalidModelFile(f"{path.name}: tensor {name} is {info.get('dtype')}, not F32, F16 or BF16")
        start, end = (int(x) for x in info["data_offsets"])
        array = raw[start:end].view(dtype).reshape([int(d) for d in info["shape"]])
        if dtype is np.uint16:  # bfloat16: the high half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = np.asarray(array, dtype=np.float32)
    return tensors


def _vocabulary(model: BertModelFolder) -> tuple[list[str], list[int], dict[str, int]]:
    """Tokens in llama.cpp's WordPiece spelling, their types, and the special tokens' ids."""
    import gguf

    words = (model.folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if words and words[-1] == "":
        words.pop()
    ids = {w: i for i, w in enumerate(words)}
    special: dict[str, int] = {}
    for key in SPECIAL_TOKENS:
        text = model.tokenizer.get(key, f"[{key.split('_')[0].upper()}]")
        if isinstance(text, dict):  # {"content": "[CLS]", ...}
            text = text.get("content")
        if isinstance(text, str) and text in ids:
            special[key] = ids[text]
    control = set(special.values())
    tokens: list[str] = []
    types: list[int] = []
    for i, w in enumerate(words):
        if i in control:
            tokens.append(w)
            types.append(int(gguf.TokenType.CONTROL))
        else:
            tokens.append(w[2:] if w.startswith("##") else "\u2581" + w)
            types.append(int(gguf.TokenType.NORMAL))
    return tokens, types, special


def _write(model: BertModelFolder, dest: Path) -> None:
    import gguf

    cfg = model.config
    n_layer = int(cfg["num_hidden_layers"])
    tensors = _safetensors(model.folder / "model.safetensors")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    tokens, types, special = _vocabulary(model)
    vocab_size = int(cfg.get("vocab_size") or len(tokens))
    if len(tokens) != vocab_size:
        raise InvalidModelFile(f"vocab.txt has {len(tokens)} tokens; config.json says {vocab_size}")
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT]
    writer = gguf.GGUFWriter(str(dest), arch)
    writer.add_name(str(cfg.get("_name_or_path") or model.folder.name))
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_context_length(int(cfg["max_position_embeddings"]))
    writer.add_embedding_length(int(cfg["hidden_size"]))
    writer.add_feed_forward_length(int(cfg["intermediate_size"]))
    writer.add_block_count(n_layer)
    writer.add_head_count(int(cfg["num_attention_heads"]))
    writer.add_layer_norm_eps(float(cfg.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType(_POOLING[model.pooling]))
    writer.add_token_type_count(int(cfg.get("type_vocab_size", 2)))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    lowercase = bool(model.tokenizer.get("do_lower_case", True))
    strip_accents = model.tokenizer.get("strip_accents")
    writer.add_bool("tokenizer.ggml.normalizer.lowercase", lowercase)
    writer.add_bool(
        "tokenizer.ggml.normalizer.strip_accents", lowercase if strip_accents is None else bool(strip_accents)
    )
    for key, add in (
        ("cls_token", writer.add_bos_token_id),  # llama.cpp's BERT starts every input with [CLS]
        ("sep_token", writer.add_sep_token_id),
        ("pad_token", writer.add_pad_token_id),
        ("unk_token", writer.add_unk_token_id),
        ("mask_token", writer.add_mask_token_id),
    ):
        if key in special:
            add(special[key])
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)
    writer.add_add_eos_token(False)
    for hf_name, array in tensors.items():
        name = names.get_name(hf_name.removeprefix("bert."), try_suffixes=(".weight", ".bias"))
        if name is None:
            raise InvalidModelFile(f"model.safetensors: no llama.cpp BERT tensor for {hf_name}")
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def convert(folder: Path, dest: Path) -> Path:
    """Write ``folder``'s model as a GGUF file at ``dest``, atomically (a temp file in the same
    folder, renamed when complete). Raises InvalidModelFile when the folder is not a BERT model
    this module converts, EngineError when the file cannot be written."""
    model = inspect_folder(folder)
    if isinstance(model, str):
        raise InvalidModelFile(f"{folder.name} cannot run on llama.cpp: {model}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep_temps(dest.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=".gguf", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    t0 = time.perf_counter()
    try:
        _write(model, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        raise EngineError(
            f"could not write the llama.cpp form of {folder.name} to {dest.parent}: {exc.strerror or exc}"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    logger.info(
        "converted %s to GGUF for llama.cpp in %.1f s: %s", folder.name, time.perf_counter() - t0, dest
    )
    return dest

"""What crossing the engine core's boundary costs (issue 15): serializing one step's outputs, and
rendering + tokenizing a chat prompt in the core's frontend thread vs in the server process.

* **Serialization**: one ``StepOutputs`` of 16 decode outputs (a token, a few characters of text
  each), and one ``AddRequest`` with a 100-token prompt: pickle (what the pipe uses) against
  msgspec's msgpack (when installed: ``pip install msgspec``), encode + decode, µs per message.
* **Render + tokenize**: (a) in the server process, on a ``vocab_only`` load of the GGUF (what a
  server-side tokenizer would need) — CPU µs per call; (b) through a core process's frontend
  thread while the core's loop decodes 16 sequences — wall µs per call seen by the caller, and
  the caller's CPU µs per call.

    python bench/core_messages.py [--model PATH] [--calls 200] [--out bench/results/core_messages.json]

Writes (and prints) one JSON object; ``docs/engine.md`` quotes a run of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pickle
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import llama_cpp

from llmos.config import SchedulerConfig
from llmos.core import CoreClient, CoreSpec, ProcessHost
from llmos.core.messages import AddRequest, StepOutputs
from llmos.engine.base import LoadSpec, SamplingParams, SeqOutput, SequenceSpec
from llmos.engine.templates import ChatTemplate
from llmos.scheduler import GenerationRequest, RequestClass, SchedulerEvent
from llmos.scheduler.stats import SchedulerCounts, TenantCounts

DEFAULT_MODEL = Path.home() / ".cache" / "llmos-tests" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write two sentences about the sea and the wind over it, please."},
]


def per_call_us(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def serialization(n: int) -> dict[str, Any]:
    outputs = tuple(
        (
            f"req-{i:04d}-0-0",
            SeqOutput(
                seq_id=f"req-{i:04d}-0-0",
                token_ids=(1234 + i,),
                text=" sea",
                prompt_tokens=100,
                completion_tokens=17,
                cached_tokens=30,
            ),
        )
        for i in range(16)
    )
    batch = StepOutputs(
        outputs=outputs,
        failed=(),
        events=(SchedulerEvent("admit", "req-0001-0-0", "t", 12.5),),
        counts=SchedulerCounts(
            running=16, queued=3, tenants=(TenantCounts("t", 3, 16),), expected_service_s=9.5
        ),
        added=42,
    )
    add = AddRequest(
        7, "req-0007-0-0", SequenceSpec("req-0007-0-0", tuple(range(100, 200)), SamplingParams()), "t", 5
    )
    out: dict[str, Any] = {}
    for name, msg in (("step_outputs_16", batch), ("add_request_100_tokens", add)):
        blob = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        out[f"pickle_{name}"] = {
            "bytes": len(blob),
            "encode_us": per_call_us(lambda m=msg: pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL), n),
            "decode_us": per_call_us(lambda b=blob: pickle.loads(b), n),
        }
        try:
            import msgspec
        except ImportError:
            out["msgspec"] = "not installed"
            continue
        enc = msgspec.msgpack.Encoder()
        dec = msgspec.msgpack.Decoder(type(msg))
        packed = enc.encode(msg)
        out[f"msgspec_{name}"] = {
            "bytes": len(packed),
            "encode_us": per_call_us(lambda m=msg, e=enc: e.encode(m), n),
            "decode_us": per_call_us(lambda b=packed, d=dec: d.decode(b), n),
        }
    return out


def server_side_tokenizer(model: Path, calls: int) -> dict[str, Any]:
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # as the engine does
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    t0 = time.perf_counter()
    m = llama_cpp.llama_model_load_from_file(str(model).encode(), params)
    load_s = time.perf_counter() - t0
    vocab = llama_cpp.llama_model_get_vocab(m)
    raw = llama_cpp.llama_model_chat_template(m, None)
    template = ChatTemplate(bytes(raw).decode() if raw else None, bos_token="", eos_token="")

    def call() -> None:
        data = template.render(MESSAGES, add_generation_prompt=True).encode()
        buf = (llama_cpp.llama_token * (len(data) + 8))()
        llama_cpp.llama_tokenize(vocab, data, len(data), buf, len(data) + 8, False, True)

    c0 = time.process_time()
    wall = per_call_us(call, calls)
    cpu = (time.process_time() - c0) / calls * 1e6
    llama_cpp.llama_model_free(m)
    return {"vocab_only_load_s": load_s, "wall_us": wall, "cpu_us": cpu}


async def core_frontend(model: Path, calls: int) -> dict[str, Any]:
    load = LoadSpec(model_path=model, n_ctx=8192, n_slots=16, n_threads=2)
    client = CoreClient(ProcessHost(), CoreSpec("llamacpp", load, "bench", SchedulerConfig()))
    await client.start()
    try:
        prompt = await client.render_prompt(MESSAGES)
        params = SamplingParams(temperature=0.0, max_tokens=10**4, ignore_eos=True)
        busy = [
            client.submit(
                GenerationRequest(f"b{i}", SequenceSpec(f"b{i}", tuple(prompt), params), RequestClass("t"))
            )
            for i in range(16)
        ]
        streams = [aiter(s) for s in busy]
        for stream in streams:  # each has its first token: all 16 decode from here on
            await anext(stream)
        walls = []
        c0 = time.process_time()
        for _ in range(calls):
            t0 = time.perf_counter()
            await client.render_prompt(MESSAGES)
            walls.append((time.perf_counter() - t0) * 1e6)
        cpu = (time.process_time() - c0) / calls * 1e6
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        return {
            "decoding_sequences": 16,
            "wall_us_p50": statistics.median(walls),
            "wall_us_p90": statistics.quantiles(walls, n=10)[-1],
            "caller_cpu_us": cpu,
        }
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "core_messages.json")
    args = ap.parse_args()
    result = {
        "command": shlex.join(["python", "bench/core_messages.py", *sys.argv[1:]]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_1min_start": os.getloadavg()[0],
        "serialization": serialization(5000),
        "render_tokenize_in_server_process": server_side_tokenizer(args.model, args.calls),
        "render_tokenize_via_core_frontend": asyncio.run(core_frontend(args.model, args.calls)),
        "load_1min_end": os.getloadavg()[0],
    }
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

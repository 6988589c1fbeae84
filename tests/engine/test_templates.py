"""Chat templates render in a sandbox: a model file cannot run code through its template."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmos.engine.base import LoadSpec
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.engine.templates import MAX_RENDERED_CHARS, ChatTemplate, max_chars_for_context
from llmos.errors import InvalidModelFile, InvalidRequest

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def _payloads(marker: Path) -> list[str]:
    cmd = f"touch {marker}"
    return [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('" + cmd + "').read() }}",
        "{{ joiner.__init__.__globals__.os.system('" + cmd + "') }}",
        "{{ lipsum.__globals__['os'].popen('" + cmd + "').read() }}",
        "{{ namespace.__init__.__globals__['os'].system('" + cmd + "') }}",
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('" + cmd + "') }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{% set _ = messages.append({'role': 'x'}) %}{{ messages }}",
        "{{ raise_exception.__globals__['os'].system('" + cmd + "') }}",
    ]


def test_chatml_fallback_when_the_model_has_none() -> None:
    t = ChatTemplate(None)
    assert t.is_fallback
    assert t.render(MESSAGES) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert not t.render(MESSAGES, add_generation_prompt=False).endswith("assistant\n")


def test_hf_helpers_are_available() -> None:
    source = (
        "{{ bos_token }}{% if tools %}{{ tools | tojson }}{% endif %}"
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
        "{{ ns.n }}|{{ strftime_now('%Y') | length }}{{ eos_token }}"
    )
    out = ChatTemplate(source, bos_token="<s>", eos_token="</s>").render(MESSAGES, tools=[{"name": "f"}])
    assert out == '<s>[{"name": "f"}]2|4</s>'
    rejecting = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        rejecting.render(MESSAGES)
    with pytest.raises(InvalidModelFile):
        ChatTemplate("{% for %}")


def test_malicious_templates_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for source in _payloads(marker):
        with pytest.raises((InvalidModelFile, InvalidRequest)):
            ChatTemplate(source).render(MESSAGES)
        assert not marker.exists(), source


def _copy_with_template(src: Path, dst: Path, template: str) -> None:
    """Write a copy of a GGUF model whose tokenizer.chat_template is replaced (gguf.GGUFWriter)."""
    import gguf

    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"]
    writer = gguf.GGUFWriter(dst, bytes(arch.parts[arch.data[0]]).decode())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "tokenizer.chat_template"):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                value = [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
            else:
                value = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(name, value, vtype, sub_type=sub)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_key_value(name, bytes(field.parts[field.data[0]]).decode("utf-8"), vtype)
        else:
            writer.add_key_value(name, field.parts[field.data[0]].tolist()[0], vtype)
    writer.add_chat_template(template)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.integration
def test_crafted_gguf_with_malicious_template(smollm2_gguf: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    crafted = tmp_path / "evil.gguf"
    payload = "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
    _copy_with_template(smollm2_gguf, crafted, payload)
    engine = LlamaCppEngine()
    info = engine.load(LoadSpec(model_path=crafted, n_ctx=512, n_slots=1))
    try:
        assert info.chat_template == payload  # the model really carries the payload
        with pytest.raises(InvalidModelFile):
            engine.render_chat(MESSAGES)
        assert not marker.exists()
        assert engine.detokenize(engine.tokenize("hello", add_special=False)) == "hello"  # still usable
    finally:
        engine.unload()


@pytest.mark.integration
def test_crafted_gguf_whose_template_would_hold_the_engine(smollm2_gguf: Path, tmp_path: Path) -> None:
    """The probe's ``{{ 'x' * 20000000 }}`` held a model's worker 52 s per request; a template that
    loops without printing would hold it for good. Both are refused at once, and the engine serves on."""
    crafted = tmp_path / "slow.gguf"
    payload = (
        "{% if messages | length > 1 %}{{ 'x' * 20000000 }}{% else %}"
        "{% for i in range(100000) %}{% for j in range(100000) %}{% set x = i %}{% endfor %}{% endfor %}"
        "{% endif %}"
    )
    _copy_with_template(smollm2_gguf, crafted, payload)
    engine = LlamaCppEngine()
    engine.load(LoadSpec(model_path=crafted, n_ctx=512, n_slots=1))
    try:
        with pytest.raises(InvalidRequest, match="builds a value"):
            engine.render_chat(MESSAGES)
        with pytest.raises(InvalidRequest, match="takes too long"):
            engine.render_chat(MESSAGES[:1])
        assert engine.detokenize(engine.tokenize("hello", add_special=False)) == "hello"
    finally:
        engine.unload()


def test_a_template_cannot_build_a_huge_value_in_one_operation() -> None:
    for source in (
        "{{ 'x' * 20000000 }}",
        "{{ [1] * 20000000 }}",
        "{{ 20000000 * 'x' }}",
        "{{ 10 ** 100000 }}",
    ):
        with pytest.raises(InvalidRequest, match="within its bounds"):
            ChatTemplate(source, max_chars=1 << 20).render(MESSAGES)
    assert ChatTemplate("{{ '-' * 3 }}{{ 2 ** 3 }}").render(MESSAGES) == "---8"


def test_rendering_stops_at_its_output_bound() -> None:
    loop = (
        "{% for i in range(100000) %}{% for m in messages %}{{ m['content'] * 20 }}{% endfor %}{% endfor %}"
    )
    with pytest.raises(InvalidRequest, match="output passes 10000 characters"):
        ChatTemplate(loop, max_chars=10_000).render(MESSAGES)


def test_rendering_stops_at_its_time_bound_even_when_it_prints_nothing() -> None:
    ticks = iter(range(1_000_000))  # a clock that moves one second per reading
    quiet = "{% for i in range(100000) %}{% for j in range(100000) %}{% set x = i %}{% endfor %}{% endfor %}"
    template = ChatTemplate(quiet, max_seconds=50, clock=lambda: float(next(ticks)))
    before = sys.gettrace()
    with pytest.raises(InvalidRequest, match="takes too long"):
        template.render(MESSAGES)
    assert sys.gettrace() is before  # the tracer is gone once rendering ends
    assert next(ticks) < 100  # stopped at the bound, not after the loops


def test_the_context_bounds_the_rendered_size() -> None:
    assert max_chars_for_context(2048) == 1 << 20
    assert max_chars_for_context(65536) == 64 * 65536
    assert max_chars_for_context(10**9) == MAX_RENDERED_CHARS

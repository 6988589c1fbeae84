// Chat playground: model picker, parameters, streaming answers (SSE over fetch).
import { get, streamChat } from "../api.js";
import { h, notice } from "../dom.js";

// Kept across view switches within the tab.
const state = { model: "", system: "", temperature: 0.7, maxTokens: 256, messages: [] };

export function render(root) {
  const modelSelect = h("select", { id: "pg-model", "data-testid": "pg-model" });
  const system = h("textarea", { id: "pg-system", rows: 3, placeholder: "You are a helpful assistant.", "data-testid": "pg-system" });
  system.value = state.system;
  const temp = h("input", { id: "pg-temperature", type: "range", min: 0, max: 2, step: 0.05, value: state.temperature, "data-testid": "pg-temperature" });
  const tempOut = h("output", { for: "pg-temperature" }, String(state.temperature));
  const maxTokens = h("input", { id: "pg-max-tokens", type: "number", min: 1, max: 8192, value: state.maxTokens, "data-testid": "pg-max-tokens" });
  const log = h("div", { class: "chat-log", "data-testid": "chat-log" });
  const input = h("textarea", { id: "pg-input", rows: 2, placeholder: "Send a message (Enter to send, Shift+Enter for a new line)", "data-testid": "pg-input" });
  const send = h("button", { class: "primary", type: "submit", "data-testid": "pg-send" }, "Send");
  const stop = h("button", { type: "button", disabled: true, "data-testid": "pg-stop" }, "Stop");
  const clear = h("button", { type: "button", class: "link" }, "Clear chat");
  const status = h("div", { class: "chat-status muted", "data-testid": "pg-status" });
  const form = h("form", { class: "composer" }, input, h("div", { class: "composer-actions" }, stop, send));

  root.append(
    h("h1", {}, "Playground"),
    h(
      "div",
      { class: "playground" },
      h(
        "aside",
        { class: "card params" },
        h("label", {}, "Model", modelSelect),
        h("label", {}, "System prompt", system),
        h("label", {}, h("span", { class: "row" }, "Temperature ", tempOut), temp),
        h("label", {}, "Max tokens", maxTokens),
        clear,
      ),
      h("section", { class: "card chat" }, log, status, form),
    ),
  );

  let controller = null;

  function bubble(role, text) {
    const body = h("div", { class: "text" }, text);
    const el = h("div", { class: `msg ${role}`, "data-role": role }, h("div", { class: "who" }, role), body);
    log.append(el);
    log.scrollTop = log.scrollHeight;
    return body;
  }

  function redraw() {
    log.replaceChildren();
    if (!state.messages.length) log.append(h("p", { class: "muted empty" }, "Ask the model something."));
    for (const m of state.messages) bubble(m.role, m.content);
  }

  async function loadModels() {
    try {
      const [models, ps] = await Promise.all([get("/v1/models"), get("/api/ps").catch(() => ({ models: [] }))]);
      const ids = models.data.map((m) => m.id);
      const resident = ps.models.map((m) => m.name).filter((n) => ids.includes(n));
      if (!state.model || !ids.includes(state.model)) state.model = resident[0] || ids[0] || "";
      modelSelect.replaceChildren(...ids.map((id) => h("option", { value: id, selected: id === state.model }, id + (resident.includes(id) ? "  (resident)" : ""))));
      if (!ids.length) status.replaceChildren(notice("No models yet: pull one first (llmos pull smollm2:135m).", "info"));
    } catch (e) {
      status.replaceChildren(notice(`Could not list models: ${e.message}`, "error"));
    }
  }

  async function submit() {
    const text = input.value.trim();
    if (!text || controller || !state.model) return;
    input.value = "";
    state.messages.push({ role: "user", content: text });
    if (state.messages.length === 1) log.replaceChildren();
    bubble("user", text);
    const out = bubble("assistant", "");
    out.classList.add("streaming");
    const reply = { role: "assistant", content: "" };
    state.messages.push(reply);
    const messages = [...(state.system.trim() ? [{ role: "system", content: state.system.trim() }] : []), ...state.messages.slice(0, -1)];
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    status.textContent = "Waiting for the first token…";
    const t0 = performance.now();
    let tFirst = null;
    try {
      const { usage, finishReason } = await streamChat(
        { model: state.model, messages, temperature: state.temperature, max_tokens: state.maxTokens },
        (piece) => {
          if (tFirst === null) tFirst = performance.now();
          reply.content += piece;
          out.textContent = reply.content;
          log.scrollTop = log.scrollHeight;
          status.textContent = "Streaming…";
        },
        { signal: controller.signal },
      );
      const total = (performance.now() - t0) / 1000;
      const ttft = tFirst === null ? null : (tFirst - t0) / 1000;
      const n = usage ? usage.completion_tokens : null;
      const rate = n && tFirst !== null && total - ttft > 0 ? (n - 1) / (total - ttft) : null;
      status.textContent = [
        n !== null ? `${n} tokens` : null,
        ttft !== null ? `first token ${Math.round(ttft * 1000)} ms` : null,
        rate ? `${rate.toFixed(1)} tokens/s` : null,
        `${total.toFixed(2)} s`,
        finishReason ? `finish: ${finishReason}` : null,
      ]
        .filter(Boolean)
        .join(" · ");
      status.dataset.done = "true";
    } catch (e) {
      if (e.name === "AbortError") status.textContent = "Stopped.";
      else {
        status.replaceChildren(notice(e.message, "error"));
        if (!reply.content) state.messages.splice(-2, 2);
      }
    } finally {
      out.classList.remove("streaming");
      controller = null;
      send.disabled = false;
      stop.disabled = true;
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      submit();
    }
  });
  stop.addEventListener("click", () => controller && controller.abort());
  clear.addEventListener("click", () => {
    state.messages = [];
    status.textContent = "";
    redraw();
  });
  modelSelect.addEventListener("change", () => (state.model = modelSelect.value));
  system.addEventListener("input", () => (state.system = system.value));
  temp.addEventListener("input", () => {
    state.temperature = Number(temp.value);
    tempOut.textContent = temp.value;
  });
  maxTokens.addEventListener("input", () => (state.maxTokens = Math.max(1, Number(maxTokens.value) || 1)));
  redraw();
  loadModels();
  input.focus();
  return () => controller && controller.abort();
}

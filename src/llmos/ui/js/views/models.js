// Registered models, which are resident, their memory and versions; load / unload / pin.
// #/models/<name> opens that model's details.
import { get, post } from "../api.js";
import { badge, bytes, card, count, h, notice, table, when } from "../dom.js";
import { stateBadge } from "./dashboard.js";

function canWrite(who) {
  return who.is_admin || (who.scopes || []).includes("models:write");
}

function params(n) {
  if (!n) return "–";
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)}B` : `${Math.round(n / 1e6)}M`;
}

export function render(root, ctx) {
  const status = h("div", {});
  const list = h("div", {});
  const detail = h("div", { "data-testid": "model-detail" });
  root.append(h("h1", {}, "Models"), status, card("Registered models", list), detail);
  let alive = true;

  async function act(what, name) {
    status.replaceChildren(notice(`${what} ${name}…`));
    try {
      if (what === "Loading") await post("/api/load", { model: name });
      else if (what === "Unloading") await post("/api/unload", { model: name });
      else if (what === "Pinning") await post("/api/pin", { model: name });
      else await post("/api/unpin", { model: name });
      status.replaceChildren(notice(`${what} ${name}: done.`, "ok"));
    } catch (e) {
      status.replaceChildren(notice(`${what} ${name} failed: ${e.message}`, "error"));
    }
    refresh();
  }

  async function showDetail(name) {
    detail.replaceChildren(card(name, h("p", { class: "muted" }, "Loading…")));
    try {
      const m = await get(`/api/models/${encodeURIComponent(name).replace(/%3A/g, ":")}`);
      const facts = [
        ["Digest", h("code", {}, m.digest)],
        ["Architecture", m.architecture || "–"],
        ["Format", m.format],
        ["Quantization", m.quantization || "–"],
        ["Context", count(m.context_length)],
        ["License", m.license || "–"],
        ["Source", m.source || "–"],
        ["Parent", m.parent || "–"],
      ];
      detail.replaceChildren(
        card(
          name,
          h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
          h("h3", {}, "Versions"),
          table(
            [
              { label: "Digest", cell: (v) => h("code", {}, v.digest.slice(0, 19)) },
              { label: "Created", cell: (v) => when(v.created_at) },
              { label: "Size", num: true, cell: (v) => bytes(v.size) },
              { label: "Parent", cell: (v) => v.parent || "–" },
            ],
            m.versions || [],
            { empty: "One version." },
          ),
        ),
      );
    } catch (e) {
      detail.replaceChildren(notice(`Could not load ${name}: ${e.message}`, "error"));
    }
  }

  async function refresh() {
    try {
      const [reg, ps] = await Promise.all([get("/api/models"), get("/api/ps")]);
      if (!alive) return;
      const resident = new Map(ps.models.map((m) => [m.name, m]));
      const write = canWrite(ctx.who);
      list.replaceChildren(
        table(
          [
            {
              label: "Model",
              cell: (m) => h("a", { href: "#/models", onclick: (e) => { e.preventDefault(); showDetail(m.name); } }, m.name),
            },
            { label: "Resident", cell: (m) => (resident.has(m.name) ? stateBadge(resident.get(m.name).state) : badge("not loaded", "muted")) },
            {
              label: "Memory",
              num: true,
              cell: (m) => {
                const r = resident.get(m.name);
                return r ? bytes(r.measured_bytes || r.estimated_bytes) : "–";
              },
            },
            { label: "Size", num: true, cell: (m) => bytes(m.size) },
            { label: "Params", num: true, cell: (m) => params(m.parameter_count) },
            { label: "Quant", cell: (m) => m.quantization || m.format },
            { label: "Context", num: true, cell: (m) => count(m.context_length) },
            { label: "Digest", cell: (m) => h("code", {}, m.digest.replace("sha256:", "").slice(0, 12)) },
            {
              label: "",
              cell: (m) => {
                if (!write) return "";
                const r = resident.get(m.name);
                if (!r) return h("button", { class: "small", onclick: () => act("Loading", m.name) }, "Load");
                return h(
                  "span",
                  { class: "actions" },
                  h("button", { class: "small", onclick: () => act(r.pinned ? "Unpinning" : "Pinning", m.name) }, r.pinned ? "Unpin" : "Pin"),
                  h("button", { class: "small", onclick: () => act("Unloading", m.name) }, "Unload"),
                );
              },
            },
          ],
          reg.models,
          { empty: "No models yet: llmos pull smollm2:135m", testid: "models-table" },
        ),
      );
    } catch (e) {
      if (alive) list.replaceChildren(notice(`Could not list models: ${e.message}`, "error"));
    }
  }
  refresh();
  const wanted = location.hash.replace(/^#\/?/, "").split("/").slice(1).join("/");
  if (wanted) {
    try {
      showDetail(decodeURIComponent(wanted));
    } catch (_) {
      showDetail(wanted); // a malformed escape: shown as given (the server answers 404)
    }
  }
  const timer = setInterval(refresh, 5000);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}

// API keys (admins, and keys with keys:write: the keys they made): list, create (the secret is
// shown once), revoke.
import { ApiError, del, get, post } from "../api.js";
import { badge, card, h, notice, table, when } from "../dom.js";

const SCOPES = [
  "inference",
  "embeddings",
  "models:read",
  "models:write",
  "data",
  "fine-tune",
  "keys:write",
  "metrics:read",
  "admin",
];

export function render(root, ctx) {
  root.append(h("h1", {}, "API keys"));
  const admin = ctx.who.is_admin;
  if (!admin && !(ctx.who.scopes || []).includes("keys:write")) {
    root.append(notice("Managing keys needs an admin key, or one with the keys:write scope. Ask an admin for one.", "info", "keys-admin-only"));
    return;
  }
  if (!admin) {
    root.append(
      notice("Keys you make are bound by yours: no more scopes, models, limits or lifetime; revoking yours revokes them.", "info", "keys-delegated"),
    );
  }
  const offered = admin ? SCOPES : SCOPES.filter((s) => (ctx.who.scopes || []).includes(s));
  const status = h("div", {});
  const list = h("div", {});
  const form = h(
    "form",
    { class: "inline-form", "data-testid": "key-form" },
    h("label", {}, "Tenant ", h("input", { name: "tenant", required: true, value: ctx.who.tenant || "local", readonly: !admin })),
    h("label", {}, "Name ", h("input", { name: "name", placeholder: "e.g. ci-runner" })),
    h(
      "fieldset",
      { class: "scopes" },
      h("legend", {}, "Scopes"),
      offered.map((s) =>
        h("label", {}, h("input", { type: "checkbox", name: "scope", value: s, checked: s === "inference" || s === "models:read" }), ` ${s}`),
      ),
    ),
    h("button", { type: "submit", class: "primary" }, "Create key"),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    try {
      const key = await post("/api/keys", {
        tenant: data.get("tenant"),
        name: data.get("name") || null,
        scopes: data.getAll("scope"),
      });
      status.replaceChildren(
        h(
          "div",
          { class: "notice ok" },
          "New key (shown once; copy it now): ",
          h("code", { class: "secret", "data-testid": "new-key" }, key.key),
        ),
      );
      form.querySelector("input[name=name]").value = "";
      refresh();
    } catch (e) {
      status.replaceChildren(notice(`Could not create the key: ${e.message}`, "error"));
    }
  });
  root.append(status, card("Keys", list), card("New key", form));

  async function revoke(k) {
    if (!confirm(`Revoke ${k.prefix}… (${k.tenant})? Clients using it stop working at once.`)) return;
    try {
      await del(`/api/keys/${encodeURIComponent(k.id)}`);
      status.replaceChildren(notice(`Revoked ${k.prefix}…`, "ok"));
    } catch (e) {
      status.replaceChildren(notice(`Could not revoke: ${e.message}`, "error"));
    }
    refresh();
  }

  async function refresh() {
    try {
      const data = await get("/api/keys");
      list.replaceChildren(
        table(
          [
            { label: "Prefix", cell: (k) => h("code", {}, `${k.prefix}…`) },
            { label: "Tenant", cell: (k) => k.tenant },
            { label: "Name", cell: (k) => k.name || "–" },
            { label: "Scopes", cell: (k) => (k.scopes || []).join(", ") },
            {
              label: "Models",
              cell: (k) => {
                const models = (k.models || []).filter((m) => m !== "*");
                return models.length ? models.join(", ") : "all";
              },
            },
            { label: "Created", cell: (k) => when(k.created_at) },
            { label: "Last used", cell: (k) => when(k.last_used_at) },
            {
              label: "Status",
              cell: (k) => (k.revoked_at ? badge("revoked", "bad") : k.expires_at && new Date(k.expires_at) < new Date() ? badge("expired", "warn") : badge("active", "ok")),
            },
            { label: "", cell: (k) => (k.revoked_at ? "" : h("button", { class: "small danger", onclick: () => revoke(k) }, "Revoke")) },
          ],
          data.data || [],
          { empty: "No keys yet.", testid: "keys-table" },
        ),
      );
    } catch (e) {
      const text =
        e instanceof ApiError && e.status === 404
          ? "Key management is not available on this server."
          : e instanceof ApiError && e.status === 403
            ? "Your key may not manage keys."
            : `Could not list keys: ${e.message}`;
      list.replaceChildren(notice(text, e.status === 404 ? "info" : "error", "keys-unavailable"));
    }
  }
  refresh();
}

// Usage per tenant, per model and per day (/api/usage); non-admins see their own tenant.
import { ApiError, get } from "../api.js";
import { card, count, h, notice, table } from "../dom.js";

const GROUPS = [
  ["tenant", "Per tenant"],
  ["model", "Per model"],
  ["day", "Per day"],
  ["tenant,model", "Per tenant and model"],
];

// The same words as `llmos usage` (cli/security.py): what a row counts.
const USAGE_COUNTS =
  "Every metered request since the database was made: chat, completions, embeddings and tasks, refused and failed ones included (the Dashboard counts generations since the server started).";

export function render(root, ctx) {
  const body = h("div", {});
  let group = "tenant";
  const picker = h(
    "div",
    { class: "segmented" },
    GROUPS.map(([g, label]) =>
      h("button", { class: g === group ? "active" : "", "data-group": g, onclick: () => { group = g; refresh(); } }, label),
    ),
  );
  root.append(
    h("h1", {}, "Usage"),
    h("p", { class: "muted" }, `${ctx.who.is_admin ? "All tenants." : `Tenant ${ctx.who.tenant} only.`} ${USAGE_COUNTS}`),
    picker,
    body,
  );
  async function refresh() {
    for (const b of picker.querySelectorAll("button")) b.classList.toggle("active", b.dataset.group === group);
    try {
      const data = await get(`/api/usage?group_by=${encodeURIComponent(group)}`);
      const keys = group.split(",");
      const rows = data.data || [];
      const total = rows.reduce(
        (a, r) => ({ requests: a.requests + r.requests, p: a.p + r.prompt_tokens, c: a.c + r.completion_tokens }),
        { requests: 0, p: 0, c: 0 },
      );
      body.replaceChildren(
        card(
          null,
          table(
            [
              ...keys.map((k) => ({ label: k[0].toUpperCase() + k.slice(1), cell: (r) => r[k] ?? "–" })),
              { label: "Requests", num: true, cell: (r) => count(r.requests) },
              { label: "Prompt tokens", num: true, cell: (r) => count(r.prompt_tokens) },
              { label: "Completion tokens", num: true, cell: (r) => count(r.completion_tokens) },
              { label: "Errors", num: true, cell: (r) => count(r.errors) },
            ],
            rows,
            { empty: "No usage recorded yet.", testid: "usage-table" },
          ),
          rows.length
            ? h("p", { class: "muted" }, `Total: ${count(total.requests)} request${total.requests === 1 ? "" : "s"}, ${count(total.p)} prompt and ${count(total.c)} completion tokens.`)
            : null,
        ),
      );
    } catch (e) {
      const text =
        e instanceof ApiError && e.status === 404
          ? "Usage accounting is not available on this server."
          : e instanceof ApiError && e.status === 403
            ? "Your key may not read usage."
            : `Could not read usage: ${e.message}`;
      body.replaceChildren(notice(text, e.status === 404 ? "info" : "error", "usage-unavailable"));
    }
  }
  refresh();
}

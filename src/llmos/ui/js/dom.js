// A tiny element builder and formatters; no framework.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function table(columns, rows, { empty = "Nothing here yet.", testid } = {}) {
  if (!rows.length) return h("p", { class: "muted empty", "data-testid": testid }, empty);
  return h(
    "table",
    { class: "grid", "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : "" }, c.label)))),
    h(
      "tbody",
      {},
      rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : "" }, c.cell(r))))),
    ),
  );
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let x = Number(n);
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i += 1;
  }
  return `${x.toFixed(i && x < 10 ? 1 : 0)} ${units[i]}`;
}

export function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  return `${Math.round(s / 60)} min`;
}

export function count(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US");
}

export function when(epochSeconds) {
  if (!epochSeconds) return "–";
  const d = typeof epochSeconds === "number" ? new Date(epochSeconds * 1000) : new Date(epochSeconds);
  return d.toLocaleString();
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

export function notice(text, kind = "info", testid) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null, "data-testid": testid }, text);
}

export function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
}

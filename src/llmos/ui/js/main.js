// Boot: find out who we are (/api/whoami), sign in where auth is on, route between views.
import { ApiError, get, getKey, setKey } from "./api.js";
import { badge, h } from "./dom.js";
import * as dashboard from "./views/dashboard.js";
import * as finetuning from "./views/finetuning.js";
import * as keys from "./views/keys.js";
import * as models from "./views/models.js";
import * as playground from "./views/playground.js";
import * as scheduler from "./views/scheduler.js";
import * as usage from "./views/usage.js";

const VIEWS = { dashboard, models, scheduler, "fine-tuning": finetuning, usage, keys, playground };
const ctx = { who: null };
let cleanup = null;

async function whoami() {
  try {
    return await get("/api/whoami");
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      // An older server without the security API: auth is off, everyone is the local admin.
      return { tenant: "local", key_prefix: null, scopes: ["admin"], is_admin: true, auth: "off" };
    }
    throw e;
  }
}

function showSignin(message = "") {
  const overlay = document.getElementById("signin");
  overlay.hidden = false;
  document.getElementById("signin-error").textContent = message;
  document.getElementById("signin-key").focus();
}

function renderWho() {
  const el = document.getElementById("who");
  el.replaceChildren();
  const who = ctx.who;
  if (!who) return;
  if (who.auth === "off") {
    el.append(badge("auth off", "muted"), h("span", { class: "tenant" }, who.tenant));
    return;
  }
  el.append(
    h("span", { class: "tenant", title: "tenant" }, who.tenant),
    who.key_prefix ? h("code", { class: "prefix" }, `${who.key_prefix}…`) : null,
    who.is_admin ? badge("admin", "ok") : null,
    h("button", { class: "link", "data-testid": "signout", onclick: signOut }, "Sign out"),
  );
}

function signOut() {
  setKey("");
  ctx.who = null;
  renderWho();
  document.getElementById("view").replaceChildren();
  showSignin();
}

async function start() {
  try {
    ctx.who = await whoami();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      const refused = Boolean(getKey());
      setKey(""); // never keep a key the server refused
      showSignin(refused ? "That key was refused." : "");
      return;
    }
    document.getElementById("view").replaceChildren(h("div", { class: "notice error" }, String(e.message || e)));
    return;
  }
  document.getElementById("signin").hidden = true;
  renderWho();
  route();
}

function route() {
  if (!ctx.who) return;
  const name = (location.hash.replace(/^#\/?/, "") || "dashboard").split("/")[0];
  const view = VIEWS[name] || dashboard;
  for (const a of document.querySelectorAll("#tabs a")) {
    a.classList.toggle("active", a.dataset.view === (VIEWS[name] ? name : "dashboard"));
  }
  if (cleanup) cleanup();
  cleanup = null;
  const root = document.getElementById("view");
  root.replaceChildren();
  root.dataset.view = name;
  const result = view.render(root, ctx);
  if (typeof result === "function") cleanup = result;
}

document.getElementById("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("signin-key");
  setKey(input.value.trim());
  input.value = "";
  await start();
});

window.addEventListener("llmos:unauthorized", () => {
  if (ctx.who && ctx.who.auth !== "off") {
    if (cleanup) cleanup();
    cleanup = null;
    ctx.who = null;
    showSignin("Your key was refused; sign in again.");
  }
});
window.addEventListener("hashchange", route);
start();

// Fine-tuning jobs (keys with the fine-tune scope; the tenant's own jobs): the list, and one
// job's detail (#/fine-tuning/<job id>) with its loss curve — train and validation loss by step,
// read from the job's metrics events — refreshed while the job is queued or running; cancel.
import { ApiError, get, optional, post } from "../api.js";
import { LineChart } from "../charts.js";
import { badge, card, count, h, notice, seconds, table, when } from "../dom.js";

const JOBS = "/v1/fine_tuning/jobs";
const POLL_MS = 3000;
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const STATE_KIND = { queued: "muted", running: "warn", succeeded: "ok", failed: "bad", cancelled: "muted" };
const EVENT_PAGES = 100; // at most 10,000 events are read (100 a page)
const EVENT_ROWS = 200; // the events table shows the newest ones

export function canFineTune(who) {
  return who.is_admin || (who.scopes || []).includes("fine-tune");
}

export function statusBadge(job) {
  return h(
    "span",
    { class: "actions", "data-testid": "ft-job-status" },
    badge(job.status, STATE_KIND[job.status] || "muted"),
    job.paused && job.status === "running" ? badge("paused for inference", "muted") : null,
  );
}

export function progressText(job) {
  const p = job.progress;
  if (!p) return job.status === "queued" ? "waiting" : "–";
  const parts = [`step ${count(p.step)}/${count(p.total_steps)}`, `epoch ${Number(p.epoch).toFixed(2)}`];
  if (job.status === "running" && p.eta_seconds !== null && p.eta_seconds !== undefined) {
    parts.push(`ETA ${seconds(p.eta_seconds)}`);
  }
  return parts.join(" · ");
}

function jobHref(id) {
  return `#/fine-tuning/${encodeURIComponent(id)}`;
}

function modelLink(name) {
  if (!name) return "–";
  return h("a", { href: `#/models/${encodeURIComponent(name)}`, "data-testid": "ft-result-model" }, name);
}

// The loss points of a job's metrics events: [train [[step, loss], ...], valid [...]], by step
// (an epoch's end repeats its last step: the later event wins).
export function lossPoints(events) {
  const train = new Map();
  const valid = new Map();
  for (const e of events) {
    if (e.type !== "metrics" || !e.data || typeof e.data.step !== "number") continue;
    if (typeof e.data.train_loss === "number") train.set(e.data.step, e.data.train_loss);
    if (typeof e.data.valid_loss === "number") valid.set(e.data.step, e.data.valid_loss);
  }
  const sorted = (m) => [...m.entries()].sort((a, b) => a[0] - b[0]);
  return [sorted(train), sorted(valid)];
}

function eventNumber(e) {
  return Number(String(e.id).replace(/^ftevent-/, "")) || 0;
}

export function render(root, ctx) {
  root.append(h("h1", {}, "Fine-tuning"));
  if (!canFineTune(ctx.who)) {
    root.append(
      notice("Fine-tuning needs a key with the fine-tune scope. Ask an admin for one.", "info", "ft-scope"),
    );
    return undefined;
  }
  const id = hashArgument();
  return id ? renderJob(root, id) : renderList(root);
}

// What follows the view's name in the hash (#/fine-tuning/<job id>), decoded; "" when none.
function hashArgument() {
  const raw = location.hash.replace(/^#\/?/, "").split("/").slice(1).join("/");
  try {
    return decodeURIComponent(raw);
  } catch (_) {
    return raw; // a malformed escape: the server answers 404 for it
  }
}

async function cancelJob(job, status) {
  if (!confirm(`Cancel fine-tuning job ${job.id}? Its progress is lost and no model is registered.`)) return false;
  try {
    const done = await post(`${JOBS}/${encodeURIComponent(job.id)}/cancel`);
    status.replaceChildren(notice(`Job ${done.id} is ${done.status}.`, "ok", "ft-status"));
    return true;
  } catch (e) {
    status.replaceChildren(notice(`Could not cancel ${job.id}: ${e.message}`, "error", "ft-status"));
    return false;
  }
}

function cancelButton(job, status, after) {
  if (FINAL.has(job.status)) return "";
  return h(
    "button",
    {
      class: "small danger",
      "data-testid": "ft-cancel",
      onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        await cancelJob(job, status);
        after();
      },
    },
    "Cancel",
  );
}

function unavailable(e, what) {
  if (e instanceof ApiError && e.status === 404 && what === "list") {
    return notice("Fine-tuning is not available on this server.", "info", "ft-unavailable");
  }
  if (e instanceof ApiError && e.status === 403) return notice(e.message, "info", "ft-scope");
  return notice(`Could not read ${what === "list" ? "the jobs" : "the job"}: ${e.message}`, "error");
}

function renderList(root) {
  const status = h("div", {});
  const list = h("div", {});
  root.append(status, card("Jobs", list));
  let alive = true;
  let timer = null;

  async function refresh() {
    clearTimeout(timer);
    let active = false;
    try {
      const page = await get(`${JOBS}?limit=100`);
      if (!alive) return;
      const jobs = page.data || [];
      active = jobs.some((j) => !FINAL.has(j.status));
      list.replaceChildren(
        table(
          [
            { label: "Job", cell: (j) => h("a", { href: jobHref(j.id) }, h("code", {}, j.id)) },
            { label: "Base model", cell: (j) => j.model },
            { label: "Resulting model", cell: (j) => modelLink(j.fine_tuned_model) },
            { label: "Status", cell: (j) => statusBadge(j) },
            { label: "Progress", cell: (j) => progressText(j) },
            { label: "Created", cell: (j) => when(j.created_at) },
            { label: "", cell: (j) => cancelButton(j, status, refresh) },
          ],
          jobs,
          { empty: "No fine-tuning jobs yet: llmos finetune create, or POST /v1/fine_tuning/jobs.", testid: "ft-jobs" },
        ),
        ...(page.has_more ? [h("p", { class: "muted" }, "The newest 100 jobs.")] : []),
      );
    } catch (e) {
      if (alive) list.replaceChildren(unavailable(e, "list"));
    }
    // Poll only while a job can still change.
    if (alive && active) timer = setTimeout(refresh, POLL_MS);
  }
  refresh();
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}

function renderJob(root, id) {
  const base = `${JOBS}/${encodeURIComponent(id)}`;
  const status = h("div", {});
  const head = h("div", {});
  const canvas = h("canvas", { class: "chart", "data-testid": "ft-loss-chart" });
  const lossNote = h("p", { class: "muted", "data-testid": "ft-loss-summary" });
  const hyper = h("div", {});
  const files = h("div", {});
  const checkpoints = h("div", {});
  const eventList = h("div", {});
  const polling = h("span", { class: "muted", "data-testid": "ft-polling" });
  root.append(
    h("p", {}, h("a", { href: "#/fine-tuning" }, "← All jobs"), " ", polling),
    status,
    head,
    card("Loss", canvas, lossNote),
    h("div", { class: "two" }, card("Hyperparameters", hyper), card("Training files", files)),
    card("Checkpoints", checkpoints),
    card("Events", eventList),
  );
  const chart = new LineChart(canvas, { series: ["train loss", "validation loss"], x: "step", xLabel: "step" });
  const events = new Map();
  let alive = true;
  let timer = null;
  let finalPolls = 0;
  let filesShown = false;

  // New events since the last read: pages newest first until one already seen.
  async function readEvents() {
    let after = null;
    for (let page = 0; page < EVENT_PAGES; page += 1) {
      const q = new URLSearchParams({ limit: "100" });
      if (after) q.set("after", after);
      const res = await get(`${base}/events?${q}`);
      let seen = false;
      for (const e of res.data) {
        if (events.has(e.id)) {
          seen = true;
          break;
        }
        events.set(e.id, e);
      }
      if (seen || !res.has_more || !res.data.length) return;
      after = res.data[res.data.length - 1].id;
    }
  }

  function showHead(job) {
    const facts = [
      ["Status", statusBadge(job)],
      ["Progress", progressText(job)],
      ["Base model", job.model],
      ["Resulting model", modelLink(job.fine_tuned_model)],
      ["Created", when(job.created_at)],
      ["Finished", when(job.finished_at)],
      ["Trained tokens", count(job.trained_tokens ?? (job.progress && job.progress.trained_tokens))],
    ];
    const p = job.progress;
    if (p && p.tokens_per_second) facts.push(["Speed", `${p.tokens_per_second.toFixed(1)} tokens/s`]);
    if (job.suffix) facts.push(["Suffix", job.suffix]);
    head.replaceChildren(
      card(
        job.id,
        job.error ? notice(`Failed: ${job.error.message}`, "error", "ft-error") : null,
        h("dl", { class: "facts", "data-testid": "ft-detail" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        FINAL.has(job.status) ? null : h("p", {}, cancelButton(job, status, poll)),
      ),
    );
    const hp = Object.entries(job.hyperparameters || {}).filter(([k]) => k !== "n_epochs");
    hyper.replaceChildren(
      h(
        "dl",
        { class: "facts", "data-testid": "ft-hyperparameters" },
        hp.map(([k, v]) => [h("dt", {}, k), h("dd", {}, Array.isArray(v) ? v.join(", ") : String(v))]),
      ),
    );
  }

  async function showFiles(job) {
    const ids = [
      ["training", job.training_file],
      ["validation", job.validation_file],
    ].filter(([, f]) => f);
    const rows = await Promise.all(
      ids.map(async ([role, f]) => ({ role, id: f, file: await optional(`/v1/files/${encodeURIComponent(f)}`) })),
    );
    files.replaceChildren(
      table(
        [
          { label: "Role", cell: (r) => r.role },
          { label: "File", cell: (r) => h("code", {}, r.id) },
          { label: "Name", cell: (r) => (r.file ? r.file.filename : "(deleted)") },
          { label: "Examples", num: true, cell: (r) => (r.file ? count(r.file.lines) : "–") },
          { label: "Tokens", num: true, cell: (r) => (r.file ? count(r.file.tokens) : "–") },
        ],
        rows,
        { testid: "ft-files" },
      ),
      ...(job.validation_file
        ? []
        : [h("p", { class: "muted" }, "No validation file: a share of the training examples is held out when there are 10 or more.")]),
    );
  }

  function showEvents(job) {
    const all = [...events.values()].sort((a, b) => eventNumber(a) - eventNumber(b));
    const [train, valid] = lossPoints(all);
    chart.setXY([train, valid], { xMax: job.progress ? job.progress.total_steps : 0 });
    const last = (pts) => (pts.length ? Number(pts[pts.length - 1][1].toFixed(4)) : "–");
    lossNote.textContent = train.length || valid.length
      ? `${train.length} train and ${valid.length} validation points; latest train loss ${last(train)}, validation loss ${last(valid)}.`
      : "No loss yet: the first point comes with the first optimizer step.";
    const newest = all.slice(-EVENT_ROWS).reverse();
    eventList.replaceChildren(
      table(
        [
          { label: "Time", cell: (e) => when(e.created_at) },
          { label: "Level", cell: (e) => badge(e.level, { warn: "warn", error: "bad" }[e.level] || "muted") },
          { label: "Message", cell: (e) => e.message },
        ],
        newest,
        { empty: "No events yet.", testid: "ft-events" },
      ),
      ...(all.length > EVENT_ROWS ? [h("p", { class: "muted" }, `The newest ${EVENT_ROWS} of ${all.length} events.`)] : []),
    );
  }

  function showCheckpoints(list) {
    const metric = (c, k) => (typeof c.metrics[k] === "number" ? c.metrics[k].toFixed(4) : "–");
    checkpoints.replaceChildren(
      table(
        [
          { label: "Step", num: true, cell: (c) => count(c.step_number) },
          { label: "Checkpoint", cell: (c) => h("code", {}, c.fine_tuned_model_checkpoint) },
          { label: "Train loss", num: true, cell: (c) => metric(c, "train_loss") },
          { label: "Validation loss", num: true, cell: (c) => metric(c, "valid_loss") },
          { label: "Saved", cell: (c) => when(c.created_at) },
        ],
        list,
        { empty: "No checkpoint yet: one is saved at the end of each epoch.", testid: "ft-checkpoints" },
      ),
    );
  }

  let busy = false;
  let rerun = false;
  async function poll() {
    clearTimeout(timer);
    if (busy) {
      rerun = true; // a cancel asked while a read was under way: read again after it
      return;
    }
    busy = true;
    let again = false;
    try {
      const job = await get(base);
      await readEvents();
      const ckpts = await get(`${base}/checkpoints?limit=100`);
      if (!alive) return;
      showHead(job);
      showEvents(job);
      showCheckpoints(ckpts.data || []);
      if (!filesShown) {
        filesShown = true;
        showFiles(job).catch((e) => files.replaceChildren(notice(`Could not read the files: ${e.message}`, "error")));
      }
      // A job's last events are written just after its final state: read once more, then stop.
      if (FINAL.has(job.status)) finalPolls += 1;
      again = finalPolls < 2;
    } catch (e) {
      if (!alive) return;
      head.replaceChildren(unavailable(e, "job"));
      again = !(e instanceof ApiError && [403, 404].includes(e.status));
    }
    busy = false;
    if (!alive) return;
    if (rerun) {
      rerun = false;
      poll();
      return;
    }
    polling.textContent = again ? "(updating every 3 s)" : "";
    polling.dataset.live = again ? "true" : "false";
    if (again) timer = setTimeout(poll, POLL_MS);
  }
  poll();
  return () => {
    alive = false;
    clearTimeout(timer);
    chart.destroy();
  };
}

// Cluster mode on the dashboard: the Ray nodes (resources total and free) and each model's
// replicas (node, state, running, queued, outstanding tokens). Hidden on one machine.
import { badge, bytes, card, count, h, table } from "../dom.js";

function resources(r) {
  const parts = [];
  if (r.CPU !== undefined) parts.push(`${r.CPU} CPU`);
  if (r.GPU) parts.push(`${r.GPU} GPU`);
  if (r.memory !== undefined) parts.push(bytes(r.memory));
  return parts.join(", ") || "–";
}

export function clusterCard(info) {
  if (!info || !info.enabled) return null;
  const nodes = table(
    [
      { label: "Node", cell: (n) => h("code", {}, n.node_id.slice(0, 12)) },
      { label: "Address", cell: (n) => n.address },
      { label: "Role", cell: (n) => (n.is_head ? "head" : "worker") },
      { label: "State", cell: (n) => badge(n.alive ? "alive" : "dead", n.alive ? "ok" : "bad") },
      { label: "Total", cell: (n) => resources(n.total) },
      { label: "Free", cell: (n) => resources(n.available) },
    ],
    info.nodes,
    { empty: "No node.", testid: "cluster-nodes" },
  );
  const rows = info.models.flatMap((m) => m.replicas.map((r) => ({ ...r, model: m.model })));
  const replicas = table(
    [
      { label: "Replica", cell: (r) => h("strong", {}, r.name) },
      { label: "Node", cell: (r) => h("code", {}, (r.node_id || "–").slice(0, 12)) },
      { label: "State", cell: (r) => badge(r.state, r.state === "serving" ? "ok" : r.state === "dead" ? "bad" : "warn") },
      { label: "Running", num: true, cell: (r) => count(r.running) },
      { label: "Queued", num: true, cell: (r) => count(r.queued) },
      { label: "Tokens out", num: true, cell: (r) => count(r.outstanding_tokens) },
    ],
    rows,
    { empty: "No model is resident.", testid: "cluster-replicas" },
  );
  const models = info.models.map((m) =>
    h(
      "p",
      {},
      `${m.model}: ${m.replicas.length} replicas (${m.autoscaling ? `autoscaling ${m.min_replicas}..${m.max_replicas}` : "fixed"}); routed: ` +
        Object.entries(m.routed).map(([k, v]) => `${k} ${v}`).join(", "),
    ),
  );
  return card(`Cluster (Ray at ${info.address})`, h("div", { "data-testid": "cluster" }, nodes, replicas, ...models));
}

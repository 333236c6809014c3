// Status view: load now and token throughput (GET /metrics/summary), batch jobs (GET /batch), polled while shown.
import { api } from "./api.js";
import { $, el, showError } from "./ui.js";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
let timer;
let shownAt = 0;

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/** Generated tokens per second per 10-second bucket as an area chart, oldest on the left. */
function chart(history, bucketSeconds) {
  const W = 600, H = 140, pad = 6;
  const rates = history.map((b) => b.generated_tokens / bucketSeconds);
  const max = Math.max(1, ...rates);
  const x = (i) => (i / Math.max(1, rates.length - 1)) * W;
  const y = (r) => H - pad - (r / max) * (H - 2 * pad);
  const line = rates.map((r, i) => `${x(i).toFixed(1)},${y(r).toFixed(1)}`).join(" ");
  $("#tps-chart").replaceChildren(
    svg("polygon", { points: `0,${H - pad} ${line} ${W},${H - pad}`, class: "area" }),
    svg("polyline", { points: line, class: "line" }),
  );
  $("#tps-max").textContent = `top of chart: ${max.toFixed(0)} tok/s`;
}

function batches(list) {
  $("#batch-table tbody").replaceChildren(
    ...list.map((b) => {
      const done = b.completed + b.failed;
      return el("tr", { "data-batch": b.batch_id },
        el("td", {}, el("code", { text: b.batch_id })),
        el("td", { text: b.model }),
        el("td", { text: b.status }),
        el("td", {}, el("progress", { max: b.total || 1, value: done, "aria-label": `progress of ${b.batch_id}` }), ` ${done}/${b.total}${b.failed ? ` (${b.failed} failed)` : ""}`),
        el("td", { class: "small", text: new Date(b.created * 1000).toLocaleString() }),
      );
    }),
  );
  $("#batch-empty").hidden = list.length > 0;
}

async function poll() {
  const [summary, jobs] = await Promise.all([api("metrics/summary"), api("batch?limit=20")]);
  $("#stat-in-flight").textContent = summary.in_flight;
  $("#stat-queue").textContent = summary.queue_depth;
  $("#stat-loaded").textContent = summary.models_loaded;
  $("#stat-tps").textContent = summary.tokens_per_second.toFixed(1);
  chart(summary.history, summary.bucket_seconds);
  batches(jobs.batches);
}

/** Polls while the Status view is shown; one failure is shown and stops polling until the view is shown again. */
export function showStatus(visible) {
  clearTimeout(timer);
  const mine = ++shownAt; // a poll still in flight when the view was left schedules nothing
  if (!visible) return;
  const tick = () =>
    poll().then(
      () => {
        if (mine === shownAt) timer = setTimeout(tick, POLL_MS);
      },
      (err) => showError(err),
    );
  tick();
}

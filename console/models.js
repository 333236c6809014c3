// Models view: the list with load/unload, registration by path, and pull with a progress bar.
import { api, ndjson } from "./api.js";
import { $, busy, el, formatBytes, showError, toast } from "./ui.js";

/** The last `GET /models` answer; other views listen for "models-changed" on document. */
export let models = [];

export async function refreshModels() {
  models = (await api("models")).models;
  render();
  document.dispatchEvent(new CustomEvent("models-changed"));
  return models;
}

const enc = encodeURIComponent;

function actions(m) {
  const label = m.loaded ? "Unload" : "Load";
  const button = el("button", { type: "button", class: "small", "data-action": label.toLowerCase(), "aria-label": `${label} ${m.id}`, text: label });
  button.addEventListener("click", () =>
    busy(button, async () => {
      await api(`models/${enc(m.id)}/${m.loaded ? "unload" : "load"}`, { method: "POST", body: {} });
      toast(`${m.id} ${m.loaded ? "unloaded" : "loaded"}`);
      await refreshModels();
    }),
  );
  return button;
}

function render() {
  const body = $("#models-table tbody");
  body.replaceChildren(
    ...models.map((m) =>
      el("tr", { "data-model": m.id },
        el("td", {}, el("strong", { text: m.id }), m.name !== m.id ? el("div", { class: "muted small", text: m.name }) : undefined),
        el("td", { text: m.type.toUpperCase() }),
        el("td", { text: formatBytes(m.size_bytes) }),
        el("td", { class: "small", text: m.capabilities.join(", ") || "none" }),
        el("td", {}, el("span", { class: `badge ${m.loaded ? "on" : ""}`, "data-field": "state", text: m.loaded ? "loaded" : "not loaded" })),
        el("td", { "data-field": "memory", text: m.loaded ? formatBytes(m.memory_usage_bytes) : "–" }),
        el("td", { text: m.context_size ?? "–" }),
        el("td", {}, actions(m)),
      ),
    ),
  );
  $("#models-empty").hidden = models.length > 0;
}

async function register(event) {
  event.preventDefault();
  await busy($("#register-submit"), async () => {
    const m = await api("models", { method: "POST", body: { name: $("#register-name").value.trim(), path: $("#register-path").value.trim() } });
    toast(`registered ${m.id}`);
    event.target.reset();
    await refreshModels();
  });
}

/** `POST /models/pull` streams NDJSON: {status:"downloading",completed,total} ... then success or error. */
async function pull(event) {
  event.preventDefault();
  const bar = $("#pull-progress");
  const status = $("#pull-status");
  const body = { source: $("#pull-source").value.trim() };
  if ($("#pull-name").value.trim()) body.name = $("#pull-name").value.trim();
  if ($("#pull-sha256").value.trim()) body.sha256 = $("#pull-sha256").value.trim().toLowerCase();
  await busy($("#pull-submit"), async () => {
    bar.hidden = false;
    bar.removeAttribute("value"); // indeterminate until the first line
    status.textContent = "starting…";
    try {
      const res = await api("models/pull", { method: "POST", body, raw: true });
      let outcome;
      for await (const line of ndjson(res)) {
        if (line.status === "downloading") {
          if (line.total) {
            bar.max = line.total;
            bar.value = line.completed;
          }
          status.textContent = `${formatBytes(line.completed)}${line.total ? ` of ${formatBytes(line.total)}` : ""}`;
        } else if (line.status === "success" || line.status === "error") {
          outcome = line;
        }
      }
      if (outcome?.status === "error") throw Object.assign(new Error(outcome.error?.message ?? "pull failed"), { code: outcome.error?.code ?? "PULL_FAILED" });
      if (outcome?.status !== "success") throw Object.assign(new Error("the download stream ended without a result"), { code: "PULL_FAILED" });
      status.textContent = `pulled ${outcome.model?.id ?? ""}`;
      toast(`pulled ${outcome.model?.id ?? "the model"}`);
      await refreshModels();
    } catch (err) {
      status.textContent = "failed";
      throw err;
    } finally {
      bar.hidden = true;
    }
  });
}

export function initModels() {
  $("#models-refresh").addEventListener("click", () => busy($("#models-refresh"), refreshModels));
  $("#register-form").addEventListener("submit", register);
  $("#pull-form").addEventListener("submit", (e) => pull(e).catch(showError));
}

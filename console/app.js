// The console's entry: views by URL hash (#models, #chat, #tensor, #status), then the first model list.
import { api } from "./api.js";
import { initAuth } from "./auth.js";
import { initChat } from "./chat.js";
import { initModels, refreshModels } from "./models.js";
import { showStatus } from "./status.js";
import { initTensor } from "./tensor.js";
import { $, showError } from "./ui.js";

const VIEWS = ["models", "chat", "tensor", "status"];

function route() {
  const name = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "models";
  for (const view of VIEWS) {
    $(`#view-${view}`).hidden = view !== name;
    $(`#tab-${view}`).setAttribute("aria-selected", String(view === name));
  }
  document.body.dataset.view = name;
  showStatus(name === "status");
}

async function start() {
  initAuth();
  initModels();
  initChat();
  initTensor();
  window.addEventListener("hashchange", route);
  route();
  await refreshModels();
  const health = await api("health");
  if (health.version) $("#server-info").textContent = `Inferno ${health.version}`;
  document.body.dataset.ready = "true";
}

start().catch(showError);

// Chat playground: streams /v1/chat/completions or /v1/completions (SSE), with Stop, TTFT and tok/s.
import { api, apiKey, apiUrl, errorFrom, sseData } from "./api.js";
import { models } from "./models.js";
import { $, el, showError } from "./ui.js";

const state = { messages: [], controller: undefined, modeChosen: false };
const num = (id) => (($(id).value.trim() === "") ? undefined : Number($(id).value));

function settings() {
  return {
    model: $("#chat-model").value,
    mode: $("#chat-mode").value,
    temperature: num("#chat-temperature"),
    top_p: num("#chat-top-p"),
    max_tokens: num("#chat-max-tokens"),
    seed: num("#chat-seed"),
  };
}

/** The request the Send button makes: the OpenAI route for the mode, and its body. */
function buildRequest(text) {
  const { model, mode, ...sampling } = settings();
  const body = { model, ...(mode === "chat" ? { messages: [...state.messages, { role: "user", content: text }] } : { prompt: text }) };
  for (const [k, v] of Object.entries(sampling)) if (v !== undefined) body[k] = v;
  return { path: mode === "chat" ? "v1/chat/completions" : "v1/completions", mode, body: { ...body, stream: true } };
}

function statsLine(s) {
  const parts = [];
  if (s.ttft !== undefined) parts.push(el("span", { "data-stat": "ttft", text: `TTFT ${Math.round(s.ttft)} ms` }));
  if (s.tokens > 1 && s.last > s.first) parts.push(el("span", { "data-stat": "tps", text: `${((s.tokens - 1) / ((s.last - s.first) / 1000)).toFixed(1)} tok/s` }));
  parts.push(el("span", { "data-stat": "tokens", text: `${s.tokens} tokens` }));
  if (s.finish) parts.push(el("span", { "data-stat": "finish", text: s.finish }));
  return parts.flatMap((p, i) => (i ? [" · ", p] : [p]));
}

function appendMessage(role, text) {
  const body = el("div", { class: "text", text });
  const stats = el("div", { class: "stats muted small" });
  const node = el("article", { class: `msg ${role}`, "data-state": role === "assistant" ? "streaming" : "done" }, el("div", { class: "role small", text: role }), body, stats);
  $("#chat-log").append(node);
  node.scrollIntoView({ block: "end" });
  return { node, body, stats };
}

function setRunning(running) {
  $("#chat-send").disabled = running;
  $("#chat-stop").disabled = !running;
}

async function send(event) {
  event.preventDefault();
  const text = $("#chat-input").value;
  if (!text.trim() || state.controller) return;
  const req = buildRequest(text);
  appendMessage("user", text);
  const reply = appendMessage("assistant", "");
  const controller = (state.controller = new AbortController());
  setRunning(true);
  const s = { tokens: 0, started: performance.now() };
  const update = () => reply.stats.replaceChildren(...statsLine(s));
  try {
    const res = await api(req.path, { method: "POST", body: { ...req.body, stream_options: { include_usage: true } }, signal: controller.signal, raw: true });
    for await (const data of sseData(res)) {
      if (data === "[DONE]") break;
      const event = JSON.parse(data);
      if (event.error) throw errorFrom(200, event);
      const choice = event.choices?.[0];
      const piece = (req.mode === "chat" ? choice?.delta?.content : choice?.text) ?? "";
      if (piece) {
        const now = performance.now();
        s.first ??= now;
        s.ttft ??= now - s.started;
        s.last = now;
        s.tokens++;
        reply.body.textContent += piece;
        update();
      }
      if (choice?.finish_reason) s.finish = choice.finish_reason;
      if (event.usage) s.tokens = event.usage.completion_tokens;
    }
    reply.node.dataset.state = "done";
  } catch (err) {
    reply.node.dataset.state = controller.signal.aborted ? "stopped" : "error";
    if (controller.signal.aborted) s.finish = "stopped";
    else showError(err);
  } finally {
    state.controller = undefined;
    setRunning(false);
    update();
  }
  if (req.mode === "chat") state.messages.push({ role: "user", content: text }, { role: "assistant", content: reply.body.textContent });
  renderSnippets();
}

const shellQuote = (s) => `'${s.replaceAll("'", `'\\''`)}'`;

/** The equivalent curl and OpenAI Python calls for what the form would send now. */
function renderSnippets() {
  const req = buildRequest($("#chat-input").value);
  const url = apiUrl(req.path);
  const keyed = apiKey.get() !== null;
  $("#chat-snippet-curl").textContent = [
    `curl -N ${url} \\`,
    `  -H 'Content-Type: application/json' \\`,
    ...(keyed ? [`  -H "Authorization: Bearer $INFERNO_API_KEY" \\`] : []),
    `  -d ${shellQuote(JSON.stringify(req.body))}`,
  ].join("\n");
  const { model, stream, messages, prompt, ...rest } = req.body;
  // JSON strings, numbers and objects of strings are valid Python literals too.
  const args = [`model=${JSON.stringify(model)}`, req.mode === "chat" ? `messages=${JSON.stringify(messages)}` : `prompt=${JSON.stringify(prompt)}`,
    ...Object.entries(rest).map(([k, v]) => `${k}=${JSON.stringify(v)}`), "stream=True"];
  $("#chat-snippet-python").textContent = [
    ...(keyed ? ["import os"] : []),
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${JSON.stringify(apiUrl("v1"))}, api_key=${keyed ? 'os.environ["INFERNO_API_KEY"]' : '"none"'})`,
    `stream = client.${req.mode === "chat" ? "chat.completions" : "completions"}.create(`,
    ...args.map((a) => `    ${a},`),
    ")",
    "for chunk in stream:",
    `    print(chunk.choices[0].${req.mode === "chat" ? "delta.content or \"\"" : "text"}, end="", flush=True)`,
  ].join("\n");
}

function setMode(mode) {
  $("#chat-mode").value = mode;
  $("#chat-input-label").textContent = mode === "chat" ? "Message" : "Prompt";
}

function modelChanged() {
  const m = models.find((x) => x.id === $("#chat-model").value);
  // A model without a chat template gets a generic one, which small base models answer poorly.
  const template = m?.details?.has_chat_template;
  $("#chat-mode-hint").textContent = template === false ? "This model has no chat template: completion mode suits it best." : "";
  if (!state.modeChosen && template !== undefined) setMode(template ? "chat" : "completion");
  renderSnippets();
}

async function fillModels() {
  const select = $("#chat-model");
  const current = select.value;
  const text = models.filter((m) => m.capabilities.includes("text-generation"));
  select.replaceChildren(...text.map((m) => el("option", { value: m.id, text: m.id })));
  if (text.some((m) => m.id === current)) select.value = current;
  if (!text.length) select.append(el("option", { value: "", text: "no text model" }));
  // The list view has no details; ask for the chosen model's (chat template or not).
  const chosen = models.find((m) => m.id === select.value);
  if (chosen && !chosen.details) chosen.details = (await api(`models/${encodeURIComponent(chosen.id)}`).catch(() => ({}))).details;
  modelChanged();
}

export function initChat() {
  $("#chat-form").addEventListener("submit", (e) => send(e).catch(showError));
  $("#chat-stop").addEventListener("click", () => state.controller?.abort());
  $("#chat-clear").addEventListener("click", () => {
    state.messages = [];
    $("#chat-log").replaceChildren();
    renderSnippets();
  });
  $("#chat-mode").addEventListener("change", () => {
    state.modeChosen = true;
    setMode($("#chat-mode").value);
    renderSnippets();
  });
  $("#chat-model").addEventListener("change", () => fillModels().catch(showError));
  for (const id of ["#chat-input", "#chat-temperature", "#chat-top-p", "#chat-max-tokens", "#chat-seed"]) $(id).addEventListener("input", renderSnippets);
  document.addEventListener("models-changed", () => fillModels().catch(showError));
  for (const b of document.querySelectorAll("button.copy")) {
    b.addEventListener("click", () => navigator.clipboard?.writeText($(`#${b.dataset.copy}`).textContent).catch(showError));
  }
}

// Tensor playground for ONNX models: the model's inputs and outputs, a JSON editor, and a digit pad for
// a 28×28 single-channel float input (MNIST).
import { api } from "./api.js";
import { drawingPad, mnistPixels, showPixels, softmax } from "./digit.js";
import { models } from "./models.js";
import { $, el, showError } from "./ui.js";

/** Most elements a generated example input may have; a larger input starts as a hint instead. */
const EXAMPLE_LIMIT = 4096;
let pad;
let running = 0;
let shown;

const current = () => models.find((m) => m.id === $("#tensor-model").value);
const dims = (shape) => (shape ?? []).map((d) => (typeof d === "number" && d > 0 ? d : 1));
const count = (shape) => dims(shape).reduce((a, b) => a * b, 1);

/** A single float32 input shaped [1,1,28,28] (or [N,1,28,28]) and a 10-score output: an MNIST digit classifier. */
function isDigitModel(m) {
  const input = m?.inputs?.length === 1 ? m.inputs[0] : undefined;
  const shape = input?.shape ?? [];
  return input?.type === "float32" && shape.length === 4 && shape.slice(1).join() === "1,28,28" && m.outputs?.length === 1 && count(m.outputs[0].shape) === 10;
}

function zeros(shape) {
  const [first, ...rest] = dims(shape);
  return first === undefined ? 0 : Array.from({ length: first }, () => zeros(rest));
}

function describe(specs) {
  return (specs ?? []).map((s) => el("li", {}, el("code", { text: s.name }), ` ${s.type} [${(s.shape ?? []).join(", ")}]`));
}

function modelChanged() {
  const m = current();
  shown = m?.id;
  $("#tensor-signature").replaceChildren(
    ...(m ? [el("div", {}, el("h4", { text: "Inputs" }), el("ul", {}, ...describe(m.inputs))), el("div", {}, el("h4", { text: "Outputs" }), el("ul", {}, ...describe(m.outputs)))] : []),
  );
  $("#digit-pad").hidden = !isDigitModel(m);
  const small = (m?.inputs ?? []).every((s) => count(s.shape) <= EXAMPLE_LIMIT);
  $("#tensor-input").value = !m ? "" : small
    ? JSON.stringify(Object.fromEntries(m.inputs.map((s) => [s.name, zeros(s.shape)])))
    : `{"${m.inputs?.[0]?.name ?? "input"}": [...nested array of shape [${(m.inputs?.[0]?.shape ?? []).join(", ")}]...]}`;
  $("#tensor-output").textContent = "";
  $("#tensor-latency").textContent = "";
}

async function infer(inputs) {
  const m = current();
  if (!m) throw Object.assign(new Error("choose an ONNX model first"), { code: "NO_MODEL" });
  const started = performance.now();
  const out = await api(`models/${encodeURIComponent(m.id)}/inference`, { method: "POST", body: { inputs } });
  $("#tensor-latency").textContent = `${Math.round(performance.now() - started)} ms round trip` + (typeof out.latency_ms === "number" ? `, ${out.latency_ms} ms in the model` : "");
  $("#tensor-output").textContent = JSON.stringify(out.outputs, null, 1).slice(0, 20000);
  return out;
}

async function runJson(event) {
  event.preventDefault();
  let inputs;
  try {
    inputs = JSON.parse($("#tensor-input").value);
  } catch (err) {
    throw Object.assign(new Error(`the inputs are not valid JSON: ${err.message}`), { code: "INVALID_JSON" });
  }
  await infer(inputs);
}

async function classifyDrawing() {
  const pixels = mnistPixels($("#digit-canvas"));
  showPixels($("#digit-preview"), pixels);
  if (!pixels) return;
  const m = current();
  const ticket = ++running; // only the latest drawing's answer is shown
  const out = await infer({ [m.inputs[0].name]: [[pixels]] });
  if (ticket !== running) return;
  const scores = Object.values(out.outputs)[0].data.flat(Infinity);
  const probs = softmax(scores);
  const best = probs.indexOf(Math.max(...probs));
  $("#digit-prediction").textContent = String(best);
  $("#digit-probs").replaceChildren(
    ...probs.map((p, d) =>
      el("li", { class: d === best ? "best" : undefined, "data-digit": d },
        el("span", { class: "digit", text: d }), el("meter", { min: 0, max: 1, value: p, "aria-label": `probability of ${d}` }),
        el("span", { class: "pct", text: `${(p * 100).toFixed(1)}%` })),
    ),
  );
}

function fillModels() {
  const select = $("#tensor-model");
  const keep = select.value;
  const onnx = models.filter((m) => m.capabilities.includes("tensor-inference"));
  select.replaceChildren(...onnx.map((m) => el("option", { value: m.id, text: m.id })));
  if (!onnx.length) select.append(el("option", { value: "", text: "no ONNX model" }));
  if (onnx.some((m) => m.id === keep)) select.value = keep;
  if (select.value !== shown) modelChanged(); // a refresh keeps what the user typed
}

export function initTensor() {
  pad = drawingPad($("#digit-canvas"), () => classifyDrawing().catch(showError));
  $("#digit-clear").addEventListener("click", () => {
    pad.clear();
    running++;
    showPixels($("#digit-preview"), undefined);
    $("#digit-prediction").textContent = "–";
    $("#digit-probs").replaceChildren();
  });
  $("#tensor-model").addEventListener("change", modelChanged);
  $("#tensor-form").addEventListener("submit", (e) => runJson(e).catch(showError));
  document.addEventListener("models-changed", fillModels);
}

// Small DOM helpers and the error toasts.

export const $ = (selector, root = document) => root.querySelector(selector);

/** `el("td", { class: "x", text: "hi" }, child...)`; other attributes are set as given (aria-*, data-*). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

export function formatBytes(n) {
  if (typeof n !== "number") return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

const MAX_TOASTS = 5;

/** A message in the toast area; errors stay until dismissed, notes go after a few seconds. */
export function toast(message, { code, kind = "info" } = {}) {
  const box = $("#toasts");
  const close = el("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", text: "×" });
  const node = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    code ? el("strong", { class: "code", text: code }) : undefined, el("span", { class: "message", text: message }), close);
  close.addEventListener("click", () => node.remove());
  box.append(node);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  if (kind !== "error") setTimeout(() => node.remove(), 4000);
  return node;
}

/** Shows any error with its code; an abort the user asked for (Stop) is not an error. */
export function showError(err) {
  if (err?.name === "AbortError") return;
  console.error(err);
  toast(err?.message ?? String(err), { code: err?.code ?? "ERROR", kind: "error" });
}

/** Runs an async UI action with its button disabled, showing any error. */
export async function busy(button, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

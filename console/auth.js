// Asks for an API key when the server answers 401; the key is checked before it is kept.
import { ApiError, apiKey, apiUrl, authHeaders, errorFrom, onKeyNeeded } from "./api.js";
import { $ } from "./ui.js";

async function check(key) {
  const res = await fetch(apiUrl("models"), { headers: authHeaders(key) });
  if (res.ok) return undefined;
  return errorFrom(res.status, await res.json().catch(() => undefined));
}

const describe = (err) => (err ? `${err.code}: ${err.message}` : "");

/** Shows the key dialog until a key that the server accepts is entered; `error` is why the last key failed. */
function askForKey(error) {
  const dialog = $("#auth-dialog");
  const form = $("#auth-form");
  const input = $("#auth-key");
  $("#auth-error").textContent = describe(error);
  input.value = "";
  return new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      $("#auth-submit").disabled = true;
      try {
        const failed = await check(key);
        // 401 is a wrong key; any other refusal (e.g. 429) is shown too, and the key is not kept.
        if (failed) {
          $("#auth-error").textContent = describe(failed);
          input.select();
          return;
        }
        apiKey.set(key);
        $("#forget-key").hidden = false;
        form.removeEventListener("submit", submit);
        dialog.close();
        resolve();
      } catch (err) {
        $("#auth-error").textContent = describe(err instanceof ApiError ? err : { code: "NETWORK_ERROR", message: err.message });
      } finally {
        $("#auth-submit").disabled = false;
      }
    };
    form.addEventListener("submit", submit);
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

export function initAuth() {
  onKeyNeeded(askForKey);
  // Without a key nothing else works; Escape would leave every waiting request hanging.
  $("#auth-dialog").addEventListener("cancel", (e) => e.preventDefault());
  $("#forget-key").hidden = apiKey.get() === null;
  $("#forget-key").addEventListener("click", () => {
    apiKey.clear();
    location.reload();
  });
}

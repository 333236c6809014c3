import { startTestServer } from "/work/main/dist/test/helpers/server.js";
import { Ollama } from "ollama";
const srv = await startTestServer({ tinyModels: ["tiny"] });
const o = new Ollama({ host: srv.url });
const it = await o.generate({ model: "tiny", prompt: "hello", stream: true, options: { num_predict: 200, temperature: 0 } });
let n = 0;
try { for await (const p of it) { if (++n === 3) { it.abort(); } } } catch (e) { console.log("client:", e.name); }
await new Promise((r) => setTimeout(r, 200));
const m = srv.app.registry.getLoaded("tiny");
console.log("chunks", n, "inFlight", m.inFlight, "generated", m.generatedTokens);
// mid-stream error shape: unknown format string
const r = await fetch(`${srv.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "tiny", prompt: "x", format: "xml" }) });
console.log(r.status, await r.text());
const r2 = await fetch(`${srv.url}/api/chat`, { method: "POST", body: JSON.stringify({ model: "tiny", messages: [{role:"user",content:"x"}], options: { num_predict: 99999 } }) });
console.log(r2.status, await r2.text());
const r3 = await fetch(`${srv.url}/api/embed`, { method: "POST", body: JSON.stringify({ model: "tiny", input: "word ".repeat(400), truncate: false }) });
console.log(r3.status, await r3.text());
const r4 = await fetch(`${srv.url}/api/embed`, { method: "POST", body: JSON.stringify({ model: "tiny", input: "word ".repeat(400), dimensions: 4 }) });
console.log(r4.status, (await r4.text()).slice(0, 200));
await srv.cleanup();

import { SessionClient } from "./dist/src/runtimes/onnx/session-client.js";
import { typesZooOnnx, linearClassifierOnnx, writeOnnx } from "./dist/test/fixtures/onnx-writer.js";
await writeOnnx("/tmp/zoo.onnx", typesZooOnnx());
let fails = 0;
for (let round = 0; round < 10; round++) {
  const rs = await Promise.allSettled(Array.from({length: 6}, () => SessionClient.open("/tmp/zoo.onnx", {executionProviders: ["cpu"], intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: "all"})));
  for (const r of rs) { if (r.status === "rejected") { fails++; console.log("fail:", r.reason.message); } else await r.value.client.dispose(); }
}
console.log("fails", fails);

// The load generator's process (forked by onnx-load.ts): runs each LoadSpec it is sent, reports the window's
// marks as they pass and then the LoadResult; exits when the parent disconnects. Keeping the clients here leaves the server's process to the server.
import { generateLoad, type LoadSpec } from "./onnx-load.js";

const send = (msg: unknown) => process.send?.(msg);

process.on("message", (spec: LoadSpec) => {
  generateLoad(spec, (mark) => send({ mark })).then(send, (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
process.on("disconnect", () => process.exit(0));
send({ ready: true });

// The IPC FrameReader against a byte stream cut at every place, the length prefixes included: the frames come out
// as written, and a large frame split across chunks gets a buffer holding that frame alone. Needs no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { FrameReader, LENGTH_BYTES } from "../../src/transports/ipc/frames.js";

const frameOf = (body: Buffer) => {
  const head = Buffer.alloc(LENGTH_BYTES);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
};
const bodies = [Buffer.from("small"), Buffer.alloc(70_000, 7), Buffer.from([]), Buffer.alloc(100_000, 9), Buffer.from("tail")];
bodies[1]!.writeUInt32BE(0xdeadbeef, 35_000);
const stream = Buffer.concat(bodies.map(frameOf));

test("frames come out as written wherever the stream is cut, the length prefixes included", () => {
  // Cuts in and around every prefix, and through the large bodies.
  const starts: number[] = [];
  for (let at = 0, i = 0; i < bodies.length; at += LENGTH_BYTES + bodies[i]!.length, i++) starts.push(at);
  const cuts = starts.flatMap((s) => [s - 1, s + 1, s + 2, s + 3, s + 5, s + 40_000]).filter((c) => c > 0 && c < stream.length);
  for (const cut of cuts) {
    for (const second of [cut + 1, cut + 3, cut + 65_537].filter((c) => c < stream.length)) {
      const reader = new FrameReader(1 << 20);
      const got = [stream.subarray(0, cut), stream.subarray(cut, second), stream.subarray(second)].flatMap((chunk) => reader.push(chunk));
      assert.equal(got.length, bodies.length, `cuts ${cut}, ${second}`);
      got.forEach((frame, i) => {
        assert.ok(frame.equals(bodies[i]!), `frame ${i}, cuts ${cut}, ${second}`);
        // A large frame that arrived in pieces is joined into a buffer of its own: prefix and body, nothing else.
        if (frame.length >= 64 * 1024 && frame.buffer !== stream.buffer) assert.equal(frame.buffer.byteLength, LENGTH_BYTES + frame.length, `frame ${i} alone in its buffer`);
      });
    }
  }
});

test("a declared length over the limit is refused even when its prefix arrives in pieces", () => {
  const head = Buffer.alloc(LENGTH_BYTES);
  head.writeUInt32BE(2_000, 0);
  const reader = new FrameReader(1_000);
  assert.deepEqual(reader.push(head.subarray(0, 1)), []);
  assert.deepEqual(reader.push(head.subarray(1, 3)), []);
  assert.throws(() => reader.push(head.subarray(3)), (e: { code?: string }) => e.code === "PAYLOAD_TOO_LARGE");
});

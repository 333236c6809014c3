#!/usr/bin/env python3
"""A small client of Inferno's IPC protocol (docs/ipc.md): the standard library and msgpack only.

Each frame is a 4-byte big-endian length, then one MessagePack map. This client sends one request at a
time and reads until that request's last frame, which keeps it simple and can never deadlock on full
socket buffers; the protocol itself allows many requests at once on one connection.

    python3 examples/ipc_client.py SOCKET health
    python3 examples/ipc_client.py SOCKET models
    python3 examples/ipc_client.py SOCKET generate MODEL "Once upon a time" [--stream] [--max-tokens N] [--temperature T]
    python3 examples/ipc_client.py SOCKET infer MODEL INPUT SHAPE [FILE | --values 1,2,3]
    python3 examples/ipc_client.py SOCKET embed MODEL TEXT [TEXT ...]
    python3 examples/ipc_client.py SOCKET load MODEL        (admin; unload likewise)

Results print as JSON; a streamed generation prints its text as it comes, then a JSON summary line.
The token for a server with auth on comes from --token or INFERNO_TOKEN. Errors print CODE: message
on stderr and exit 1. Needs msgpack (Debian: apt-get install python3-msgpack; else pip install msgpack).
"""

import argparse
import json
import os
import socket
import struct
import sys

import msgpack

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024 * 1024

# KServe datatypes as struct format characters (little-endian on the wire). BYTES travels as a list of strings.
FORMATS = {
    "BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q",
    "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q",
    "FP16": "e", "FP32": "f", "FP64": "d",
}


class InfernoError(Exception):
    """A coded error from the server (MODEL_NOT_FOUND, INVALID_REQUEST, ...)."""

    def __init__(self, code, message, details=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


def pack_values(datatype, values):
    """Numbers as the raw little-endian bytes of a tensor of `datatype`."""
    return struct.pack(f"<{len(values)}{FORMATS[datatype]}", *values)


def unpack_values(datatype, data):
    """A tensor's `data` as a flat list: numbers from raw bytes, strings as they are."""
    if datatype == "BYTES":
        return list(data)
    size = struct.calcsize(FORMATS[datatype])
    return list(struct.unpack(f"<{len(data) // size}{FORMATS[datatype]}", data))


class Client:
    """One connection: `hello` on connect, then one request at a time."""

    def __init__(self, path, token=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.next_id = 1
        hello = {"version": PROTOCOL_VERSION}
        if token:
            hello["token"] = token
        try:
            self.server = self.call("hello", **hello)
        except Exception:
            self.close()
            raise

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Framing.

    def _send(self, op, fields):
        request_id = self.next_id
        self.next_id += 1
        body = msgpack.packb({"id": request_id, "op": op, **fields}, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        return request_id

    def _read_exactly(self, n):
        chunks = []
        while n > 0:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _receive(self, request_id):
        """The next frame for `request_id`; raises the server's error (a connection-level one has id None)."""
        while True:
            (length,) = struct.unpack(">I", self._read_exactly(4))
            if length > MAX_FRAME_BYTES:
                raise ConnectionError(f"a frame of {length} bytes is over this client's limit")
            frame = msgpack.unpackb(self._read_exactly(length), raw=False)
            if frame.get("id") is None and "error" in frame:
                self.close()
            elif frame.get("id") != request_id:
                continue
            if "error" in frame:
                e = frame["error"]
                raise InfernoError(e["code"], e["message"], e.get("details"))
            return frame

    # Ops.

    def call(self, op, **fields):
        """Any op with one answer: its `result`."""
        return self._receive(self._send(op, fields))["result"]

    def health(self):
        return self.call("health")

    def models(self):
        return self.call("models")["models"]

    def generate(self, model, prompt=None, messages=None, **settings):
        """A whole generation: {text, finish_reason, usage}. Settings: max_tokens, temperature, seed, stop, ..."""
        return self.call("generate", **_generate_fields(model, prompt, messages, settings))

    def generate_stream(self, model, prompt=None, messages=None, **settings):
        """Yields the text pieces as they come; returns the `done` event ({finish_reason, usage})."""
        request_id = self._send("generate", {**_generate_fields(model, prompt, messages, settings), "stream": True})
        while True:
            frame = self._receive(request_id)
            if frame.get("event") == "token":
                yield frame["text"]
            else:
                return {"finish_reason": frame["finish_reason"], "usage": frame["usage"]}

    def infer(self, model, inputs, outputs=None):
        """Tensor inference. `inputs`: name -> (datatype, shape, raw bytes or list of strings for BYTES)."""
        wire = {name: {"datatype": dt, "shape": list(shape), "data": data} for name, (dt, shape, data) in inputs.items()}
        fields = {"model": model, "inputs": wire}
        if outputs:
            fields["outputs"] = list(outputs)
        return self.call("infer", **fields)

    def embed(self, model, texts, dimensions=None):
        """Unit-length embeddings as lists of floats (little-endian float32 on the wire)."""
        fields = {"model": model, "input": texts}
        if dimensions:
            fields["dimensions"] = dimensions
        result = self.call("embed", **fields)
        result["embeddings"] = [unpack_values("FP32", v) for v in result["embeddings"]]
        return result


def _generate_fields(model, prompt, messages, settings):
    fields = {"model": model, **{k: v for k, v in settings.items() if v is not None}}
    if messages is not None:
        fields["messages"] = messages
    else:
        fields["prompt"] = prompt
    return fields


# The command line.


def _parse_args(argv):
    p = argparse.ArgumentParser(description="Talk to an Inferno server over its IPC socket (docs/ipc.md).")
    p.add_argument("socket", help="the server's --ipc-socket path")
    p.add_argument("--token", default=os.environ.get("INFERNO_TOKEN"), help="API key or JWT (default: $INFERNO_TOKEN)")
    ops = p.add_subparsers(dest="op", required=True)
    ops.add_parser("health")
    ops.add_parser("models")
    g = ops.add_parser("generate", help="generate text from a prompt")
    g.add_argument("model")
    g.add_argument("prompt")
    g.add_argument("--chat", action="store_true", help="send the prompt as one user message (the model's chat template)")
    g.add_argument("--stream", action="store_true", help="print the text as it comes")
    g.add_argument("--max-tokens", type=int)
    g.add_argument("--temperature", type=float)
    g.add_argument("--seed", type=int)
    i = ops.add_parser("infer", help="run a tensor model on one input")
    i.add_argument("model")
    i.add_argument("input", help="the input's name")
    i.add_argument("shape", help="dimensions separated by commas, e.g. 1,4")
    i.add_argument("file", nargs="?", help="the input's raw little-endian bytes ('-' for stdin)")
    i.add_argument("--values", help="the input's values separated by commas, instead of a file")
    i.add_argument("--datatype", default="FP32", choices=sorted(FORMATS))
    e = ops.add_parser("embed", help="embed one or more texts")
    e.add_argument("model")
    e.add_argument("texts", nargs="+")
    e.add_argument("--dimensions", type=int)
    for op in ("load", "unload"):
        ops.add_parser(op, help=f"{op} a model (admin)").add_argument("model")
    return p.parse_args(argv)


def _infer_input(args):
    shape = [int(d) for d in args.shape.split(",") if d != ""]
    if args.values is not None:
        numbers = [float(v) if args.datatype.startswith("FP") else int(v) for v in args.values.split(",")]
        return args.datatype, shape, pack_values(args.datatype, numbers)
    if args.file is None:
        raise SystemExit("infer needs FILE or --values")
    if args.file == "-":
        return args.datatype, shape, sys.stdin.buffer.read()
    with open(args.file, "rb") as f:
        return args.datatype, shape, f.read()


def run(args):
    with Client(args.socket, token=args.token) as client:
        if args.op == "health":
            return client.health()
        if args.op == "models":
            return client.models()
        if args.op == "generate":
            settings = {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed}
            chat = {"messages": [{"role": "user", "content": args.prompt}]} if args.chat else {"prompt": args.prompt}
            if not args.stream:
                return client.generate(args.model, **chat, **settings)
            stream = client.generate_stream(args.model, **chat, **settings)
            pieces = 0
            while True:
                try:
                    text = next(stream)
                except StopIteration as end:
                    print()
                    return {**end.value, "pieces": pieces}
                pieces += 1
                print(text, end="", flush=True)
        if args.op == "infer":
            result = client.infer(args.model, {args.input: _infer_input(args)})
            for tensor in result["outputs"].values():
                tensor["data"] = unpack_values(tensor["datatype"], tensor["data"])
            return result
        if args.op == "embed":
            return client.embed(args.model, args.texts, dimensions=args.dimensions)
        return client.call(args.op, model=args.model)


def main(argv=None):
    args = _parse_args(argv)
    try:
        result = run(args)
    except InfernoError as e:
        print(f"{e.code}: {e.message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"cannot talk to {args.socket}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The transport bench's second gRPC client: grpcio (gRPC's C core), the library Triton's Python client is built on.

Driven by the bench (bench/grpcio-side.ts) over stdin/stdout, one JSON object a line each way. The bench gives it
one serialized ModelInferRequest; this client sends those bytes unchanged (no protobuf work on its side) and
times calls with its own clock, so the pipe between the bench and this process is outside every figure.

  {"op": "time"}                                    -> {"ms": <one call>}
  {"op": "output"}                                  -> {"response": <base64 of one ModelInferResponse>}
  {"op": "load", "clients", "warmupMs", "durationMs"} -> {"mark": "open"}, {"mark": "close"}, then
      {"completed", "latenciesMs", "errors", "firstError", "cpuMs", "cpuWindowMs"}: `clients` closed-loop
      clients on one channel; counted are the calls that complete inside the window (as bench/onnx-load.ts).
  {"op": "streams", "request": <base64 ModelInferRequest>, "count"} -> {"streams": [{"startMs", "responses":
      [[ms, <base64 ModelStreamInferResponse>], ...]}, ...], "cpuMs"}: `count` ModelStreamInfer calls at once on
      the channel, one request each, every response stamped as it arrives; the bench reads the responses.
Started as: grpcio_client.py ADDRESS [REQUEST_FILE] (the request of `time`, `output` and `load`). Needs Debian's python3-grpcio (or pip's grpcio).
"""
import base64
import json
import queue
import sys
import threading
import time

import grpc

METHOD = "/inference.GRPCInferenceService/ModelInfer"
STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def load(call, request, clients, warmup_ms, duration_ms):
    start = time.perf_counter()
    window_start = start + warmup_ms / 1000
    window_end = window_start + duration_ms / 1000
    lock = threading.Lock()
    latencies, failures = [], []
    ready = queue.Queue()  # a client whose call has ended, ready for its next one (or None when it stopped)

    def issue():
        sent = time.perf_counter()
        future = call.future(request)

        def done(f):
            ended = time.perf_counter()
            try:
                f.result()
                if window_start <= ended <= window_end:
                    with lock:
                        latencies.append((ended - sent) * 1000)
            except grpc.RpcError as err:
                with lock:
                    failures.append(f"{err.code().name}: {err.details()}")
            ready.put(1)

        future.add_done_callback(done)

    def issuer():
        # One thread issues every call, so a callback never recurses into the next call.
        running = clients
        for _ in range(clients):
            issue()
        while running > 0:
            ready.get()
            if time.perf_counter() < window_end and len(failures) < 100:
                issue()
            else:
                running -= 1

    thread = threading.Thread(target=issuer)
    thread.start()
    time.sleep(max(0.0, window_start - time.perf_counter()))
    cpu_before, opened = time.process_time(), time.perf_counter()
    emit({"mark": "open"})
    time.sleep(max(0.0, window_end - time.perf_counter()))
    emit({"mark": "close"})
    cpu_ms, window_ms = (time.process_time() - cpu_before) * 1000, (time.perf_counter() - opened) * 1000
    thread.join()
    with lock:
        return {
            "completed": len(latencies), "latenciesMs": latencies, "errors": len(failures),
            "firstError": failures[0] if failures else None, "cpuMs": cpu_ms, "cpuWindowMs": window_ms,
        }


def streams(stream_call, request, count):
    out = [None] * count

    def one(i):
        started = time.perf_counter()
        responses = []
        # One request, then the client's half of the call closes: the server ends the call after its final response.
        for msg in stream_call(iter([request])):
            responses.append([time.perf_counter() * 1000, base64.b64encode(msg).decode()])
        out[i] = {"startMs": started * 1000, "responses": responses}

    cpu_before = time.process_time()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"streams": out, "cpuMs": (time.process_time() - cpu_before) * 1000}


def main():
    address = sys.argv[1]
    request = b""
    if len(sys.argv) > 2:
        with open(sys.argv[2], "rb") as f:
            request = f.read()
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)
    call = channel.unary_unary(METHOD)  # bytes in, bytes out: no (de)serializer
    stream_call = channel.stream_stream(STREAM_METHOD)
    emit({"ready": True, "grpcio": grpc.__version__})
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "time":
                started = time.perf_counter_ns()
                call(request)
                emit({"ms": (time.perf_counter_ns() - started) / 1e6})
            elif cmd["op"] == "output":
                emit({"response": base64.b64encode(call(request)).decode()})
            elif cmd["op"] == "load":
                emit(load(call, request, cmd["clients"], cmd["warmupMs"], cmd["durationMs"]))
            elif cmd["op"] == "streams":
                emit(streams(stream_call, base64.b64decode(cmd["request"]), cmd["count"]))
            else:
                emit({"error": f"unknown op {cmd['op']}"})
        except grpc.RpcError as err:
            emit({"error": f"{err.code().name}: {err.details()}"})
    channel.close()


if __name__ == "__main__":
    main()

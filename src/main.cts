#!/usr/bin/env node
// The `inferno` executable. CommonJS on purpose: an ES module entry is read through libuv's thread pool
// before its first line runs, which fixes the pool's size before anything could choose it. node-llama-cpp
// runs each llama_decode on that pool, and one pool thread keeps every decode on the same OS thread (see
// src/runtimes/llama/threadpool.ts and README, Threads); a UV_THREADPOOL_SIZE set by the user wins.
process.env.UV_THREADPOOL_SIZE ??= "1"; // UV_THREADPOOL_DEFAULT
void import("./cli.js");

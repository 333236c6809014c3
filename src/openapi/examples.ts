/** Request examples for the main bodies, keyed "METHOD /url" as registered; each is a body the route's schema accepts. */
export const REQUEST_EXAMPLES: Record<string, unknown> = {
  "POST /inference": { model: "llama-3.2-1b-instruct", prompt: "The capital of France is", max_tokens: 32, temperature: 0.7 },
  "POST /models/:id/inference": { prompt: "Write a haiku about rivers.", max_tokens: 64, stream: false },
  "POST /models": { name: "qwen2.5-0.5b", path: "/models/qwen2.5-0.5b-instruct-q4_k_m.gguf", options: { context_size: 4096, gpu_layers: "auto" } },
  "POST /v1/chat/completions": {
    model: "llama-3.2-1b-instruct",
    messages: [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "Say hello in French." },
    ],
    max_tokens: 64,
    stream: false,
  },
  "POST /v1/completions": { model: "llama-3.2-1b-instruct", prompt: "Once upon a time", max_tokens: 32 },
  "POST /v1/embeddings": { model: "all-minilm-l6-v2", input: ["first text", "second text"] },
  "POST /api/chat": {
    model: "llama-3.2-1b-instruct",
    messages: [{ role: "user", content: "Why is the sky blue?" }],
    stream: false,
    options: { temperature: 0.2, num_predict: 128 },
  },
  "POST /api/generate": { model: "llama-3.2-1b-instruct", prompt: "Why is the sky blue?", stream: false },
  "POST /v2/models/:name/infer": {
    id: "req-1",
    inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [0.1, 0.2, 0.3, 0.4] }],
    outputs: [{ name: "output" }],
  },
  "POST /auth/login": { username: "admin", password: "correct horse battery staple" },
};

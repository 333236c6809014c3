/** Parent → probe child: open this GGUF file with a context of this size. */
export interface ProbeRequest {
  id: number;
  path: string;
  contextSize: number;
}

/**
 * Probe child → parent. `ok: false` with `backend: true` means llama.cpp itself could not start, which
 * says nothing about the file.
 */
export interface ProbeReply {
  id: number;
  ok: boolean;
  message?: string;
  ms: number;
  backend?: boolean;
}

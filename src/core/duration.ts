const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Ollama-style keep-alive durations: a number of seconds, or Go duration text ("5m", "1h30m", "250ms").
 * Negative means forever (null); 0 means now. Returns milliseconds, or undefined when not a duration.
 */
export function parseKeepAlive(value: unknown): number | null | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value < 0 ? null : Math.round(value * 1000);
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return parseKeepAlive(Number(text));
  const m = /^(-?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(text);
  if (!m) return undefined;
  let ms = 0;
  for (const part of m[2]!.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(part[1]) * UNIT_MS[part[2]!]!;
  return m[1] === "-" ? null : Math.round(ms);
}

import os from "node:os";

/** Memory a model holds (or will hold): system RAM and GPU memory, in bytes. */
export interface MemoryUse {
  ram: number;
  vram: number;
}

export const NO_MEMORY: MemoryUse = Object.freeze({ ram: 0, vram: 0 });

/** What the budget reads from the machine; swapped for fixed numbers in unit tests. */
export interface MemoryProbe {
  /** RAM the process can still get (cgroup limits included), in bytes. */
  availableRam(): number;
  /** RAM the process may use in all (the cgroup limit when lower than the machine's). */
  totalRam(): number;
  /** Free GPU memory, or null on a host without one (asked only when a model wants VRAM). */
  freeVram(): Promise<number | null>;
}

export const systemProbe = (freeVram: () => Promise<number | null> = async () => null): MemoryProbe => ({
  availableRam: () => process.availableMemory(),
  totalRam: () => {
    const limit = process.constrainedMemory();
    const total = os.totalmem();
    return limit > 0 && limit < total ? limit : total;
  },
  freeVram,
});

/** Share of free RAM that `auto` gives to models: the rest is the OS's, the page cache's and the server's own. */
export const AUTO_RAM_SHARE = 0.8;
/** Share of free VRAM a load may take under `auto` (llama.cpp needs scratch room beyond its estimate). */
export const AUTO_VRAM_SHARE = 0.9;

const UNITS: Record<string, number> = {
  b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
};

/** A budget setting: "auto", a byte count, a size with a unit ("8GiB", "512MB"), or a share of total RAM ("75%"). */
export type BudgetSetting = "auto" | { bytes: number } | { percent: number };

/** Parses a budget setting; undefined when the text is none of the accepted forms. */
export function parseBudget(value: unknown): BudgetSetting | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value > 0 ? { bytes: Math.floor(value) } : undefined;
  if (typeof value !== "string") return undefined;
  const text = value.trim().toLowerCase();
  if (text === "auto") return "auto";
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
  if (pct) {
    const percent = Number(pct[1]);
    return percent > 0 && percent <= 100 ? { percent } : undefined;
  }
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(text);
  const unit = UNITS[m?.[2] || "b"];
  if (!m || unit === undefined) return undefined;
  const bytes = Math.floor(Number(m[1]) * unit);
  return bytes > 0 ? { bytes } : undefined;
}

/** A GPU budget: like RAM's, but a percentage (of total RAM) means nothing for VRAM. */
export function parseVramBudget(value: unknown): "auto" | { bytes: number } | undefined {
  const b = parseBudget(value);
  return b === "auto" || (b && "bytes" in b) ? b : undefined;
}

/** "1.5 GiB", "320 MiB": sizes in messages. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${i === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[i]}`;
}

/** A model the planner may unload: idle (nothing in flight), least recently used first. */
export interface Candidate {
  id: string;
  use: MemoryUse;
  lastUsed: number;
}

export interface PlanInput {
  need: MemoryUse;
  /** RAM and VRAM a load may take now without unloading anything (budget and machine both considered). */
  room: MemoryUse;
  /** Models loaded or loading now (the one being loaded excluded). */
  count: number;
  idle: Candidate[];
  /** 0: no limit. */
  maxLoaded: number;
}

export type Plan =
  | { ok: true; unload: string[] }
  | { ok: false; reason: "memory"; resource: "ram" | "vram"; needed: number; free: number }
  | { ok: false; reason: "count"; loaded: number; max: number };

/**
 * Decides which idle models to unload, least recently used first, so that a model needing `need` fits in
 * the room left and the number of loaded models stays within the maximum. Pure: it only plans, and a
 * plan that does not fit unloads nothing. `free` in a refusal is the most that unloading every idle
 * model would have made room for.
 */
export function planLoad(input: PlanInput): Plan {
  const idle = [...input.idle].sort((a, b) => a.lastUsed - b.lastUsed);
  const unload: string[] = [];
  const room = { ...input.room };
  const countOk = () => input.maxLoaded <= 0 || input.count - unload.length < input.maxLoaded;
  while (input.need.ram > room.ram || input.need.vram > room.vram || !countOk()) {
    const next = idle.shift();
    if (!next) break;
    unload.push(next.id);
    room.ram += next.use.ram;
    room.vram += next.use.vram;
  }
  for (const resource of ["ram", "vram"] as const) {
    if (input.need[resource] > room[resource]) {
      return { ok: false, reason: "memory", resource, needed: input.need[resource], free: Math.max(0, room[resource]) };
    }
  }
  if (!countOk()) return { ok: false, reason: "count", loaded: input.count, max: input.maxLoaded };
  return { ok: true, unload };
}

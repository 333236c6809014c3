import { setTimeout as sleep } from "node:timers/promises";

/**
 * `rounds` rounds of every side, one side at a time, never two at once. Round r starts at side r mod n, so no
 * side always goes first or always follows the same one. Returns each side's results in round order.
 */
export async function rotate<T>(rounds: number, sides: ReadonlyArray<() => Promise<T>>, settleMs = 0): Promise<T[][]> {
  const out = sides.map(() => [] as T[]);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < sides.length; k++) {
      const i = (r + k) % sides.length;
      out[i]!.push(await sides[i]!());
      if (settleMs > 0) await sleep(settleMs);
    }
  }
  return out;
}

// A real nginx running deploy/nginx.conf, rendered for loopback: the upstream servers become the given
// replicas' ports, it listens on free loopback ports, and its pid, logs and temp files live in a temp dir.
// Everything else (balancing, upgrade headers, buffering, timeouts, gRPC) is the deployed file as it is.
// Tests skip without nginx unless INFERNO_REQUIRE_NGINX=1 (Debian package nginx-light, or nginx).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { repoRoot } from "./paths.js";

/** The nginx binary: on PATH, or Debian's /usr/sbin (not on a non-root user's PATH). */
export function nginxBinary(): string | undefined {
  for (const bin of ["nginx", "/usr/sbin/nginx"]) {
    if (spawnSync(bin, ["-v"], { encoding: "utf8" }).status === 0) return bin;
  }
  return undefined;
}

/** `test()` options that skip an nginx test when nginx is not installed (fail instead where it is required). */
export function nginxAvailable(): { skip: string | false } {
  if (nginxBinary()) return { skip: false };
  if (process.env.INFERNO_REQUIRE_NGINX === "1") throw new Error("nginx is required (INFERNO_REQUIRE_NGINX=1) but not installed");
  return { skip: "nginx not installed (Debian package nginx-light)" };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Upstreams {
  /** host:port of each replica's HTTP listener. */
  http: string[];
  /** host:port of each replica's gRPC listener. */
  grpc: string[];
}

/** deploy/nginx.conf with its upstream servers, listen ports and file paths made local. */
export function renderNginxConf(conf: string, upstreams: Upstreams, ports: { http: number; grpc: number }, dir: string): string {
  const withServers = (text: string, upstream: string, servers: string[]) =>
    text.replace(new RegExp(`(upstream ${upstream} \\{)([^}]*)\\}`), (_all, head: string, body: string) => {
      const lines = body.split("\n");
      const first = lines.findIndex((l) => /^\s*server /.test(l));
      if (first === -1) throw new Error(`nginx.conf: upstream ${upstream} has no server line`);
      const params = /^\s*server \S+((?: [^;]+)?);/.exec(lines[first]!)?.[1] ?? "";
      const rendered = servers.map((s) => `    server ${s}${params};`);
      const kept = lines.filter((l) => !/^\s*server /.test(l));
      kept.splice(first, 0, ...rendered);
      return `${head}${kept.join("\n")}}`;
    });
  let out = withServers(withServers(conf, "inferno_http", upstreams.http), "inferno_grpc", upstreams.grpc);
  const listen = (from: RegExp, to: string) => {
    if (!from.test(out)) throw new Error(`nginx.conf: no ${from}`);
    out = out.replace(from, to);
  };
  listen(/listen 8080;/, `listen 127.0.0.1:${ports.http};`);
  listen(/listen 8081 http2;/, `listen 127.0.0.1:${ports.grpc} http2;`);
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((k) => `  ${k}_temp_path ${path.join(dir, k)};`).join("\n");
  return out.replace(/^http \{$/m, `http {\n${temp}`);
}

export interface RunningNginx {
  url: string;
  grpcAddress: string;
  /** Its error log so far. */
  log(): Promise<string>;
  close(): Promise<void>;
}

/** Starts nginx with deploy/nginx.conf in front of `upstreams`; resolves once both ports accept connections. */
export async function startNginx(upstreams: Upstreams): Promise<RunningNginx> {
  const bin = nginxBinary();
  if (!bin) throw new Error("nginx is not installed");
  const dir = await mkdtemp(path.join(os.tmpdir(), "inferno-nginx-"));
  // Run as root, nginx's workers switch to its unprivileged user, which must reach the temp paths.
  await chmod(dir, 0o777);
  const ports = { http: await freePort(), grpc: await freePort() };
  const conf = path.join(dir, "nginx.conf");
  await writeFile(conf, renderNginxConf(await readFile(path.join(repoRoot, "deploy/nginx.conf"), "utf8"), upstreams, ports, dir));
  const errorLog = path.join(dir, "error.log");
  const log = () => readFile(errorLog, "utf8").catch(() => "");
  const child: ChildProcess = spawn(bin, ["-p", dir, "-c", conf, "-e", errorLog, "-g", `pid ${path.join(dir, "nginx.pid")}; daemon off;`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const close = async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  const accepts = (port: number) =>
    new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => (socket.end(), resolve(true)));
      socket.on("error", () => resolve(false));
    });
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) {
      const text = `${stderr}${await log()}`;
      await close();
      throw new Error(`nginx exited: ${text}`);
    }
    if ((await accepts(ports.http)) && (await accepts(ports.grpc))) {
      return { url: `http://127.0.0.1:${ports.http}`, grpcAddress: `127.0.0.1:${ports.grpc}`, log, close };
    }
    await sleep(25);
  }
  await close();
  throw new Error(`nginx did not listen: ${stderr}`);
}

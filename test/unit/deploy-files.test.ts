// The deployment files (deploy/) cannot be run on the project's machines (no Docker engine, no cluster), so
// what they must hold is checked here against the code they configure: env names come from the config
// schema (a renamed key fails this test), values parse with loadConfig, probe paths, drain timing, ports,
// body limits and the nginx balancing rules. test/http/scale-out-nginx.test.ts runs nginx.conf for real.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import { configSchema, envNameOf, loadConfig } from "../../src/config/config.js";
import { MAX_INPUT_BYTES } from "../../src/dialects/openai/batch-input.js";
import { repoRoot } from "../helpers/paths.js";

type Doc = Record<string, any>;
const deploy = (file: string) => path.join(repoRoot, "deploy", file);
const read = (file: string) => readFileSync(deploy(file), "utf8");
const yamlDocs = (file: string): Doc[] =>
  parseAllDocuments(read(file), { merge: true }).map((d) => {
    assert.deepEqual(d.errors, [], `${file} parses`);
    return d.toJS() as Doc;
  });

const defaults = configSchema.parse({});
const envNames = new Map(Object.keys(configSchema.shape).map((key) => [envNameOf(key), key]));
const dockerfile = readFileSync(path.join(repoRoot, "Dockerfile"), "utf8");
const imageEnv = Object.fromEntries([...dockerfile.matchAll(/^\s+(INFERNO_[A-Z_]+)=(\S+)/gm)].map((m) => [m[1]!, m[2]!]));
const imageUid = Number(/--uid (\d+)/.exec(dockerfile)?.[1]);

/** Every INFERNO_* name is a config key's env name, and the values pass the config schema. */
function assertConfigEnv(env: Record<string, string>, where: string) {
  for (const name of Object.keys(env).filter((n) => n.startsWith("INFERNO_"))) {
    assert.ok(envNames.has(name), `${where}: ${name} is not the env name of any config key (src/config/config.ts)`);
  }
  return loadConfig({ env: { ...imageEnv, ...env } });
}

const seconds = (duration: string) => {
  const m = /^(\d+)(s|m)$/.exec(duration);
  assert.ok(m, `a duration such as 30s: ${duration}`);
  return Number(m[1]) * (m[2] === "m" ? 60 : 1);
};

const compose = parse(read("docker-compose.yml"), { merge: true }) as Doc;
const replicas = Object.entries(compose.services as Record<string, Doc>).filter(([name]) => /^inferno-\d+$/.test(name));

test("compose: three replicas of the repository's image, sharing Redis and the shared data dir", () => {
  assert.deepEqual(replicas.map(([name]) => name), ["inferno-1", "inferno-2", "inferno-3"]);
  const ids = new Set<string>();
  for (const [name, svc] of replicas) {
    assert.equal(svc.build.context, "..", `${name} builds the repository's Dockerfile`);
    assert.equal(svc.build.dockerfile, "Dockerfile");
    assert.equal(svc.image, replicas[0]![1].image, "one image for all");
    const env = { ...svc.environment, INFERNO_JWT_SECRET: "x".repeat(32) } as Record<string, string>;
    const config = assertConfigEnv(env, name);
    assert.equal(config.redisUrl, "redis://redis:6379");
    assert.equal(config.auth, true);
    ids.add(config.replicaId);
    assert.equal(svc.environment.INFERNO_REPLICA_ID, name, "the replica label is the service name Prometheus scrapes");
    const mounts = new Map((svc.volumes as string[]).map((v) => [v.split(":")[1]!, v.split(":")[0]!]));
    assert.equal(mounts.get(config.sharedDataDir!), "shared", `${name} mounts the shared volume at sharedDataDir`);
    assert.equal(mounts.get(config.modelsDir), "models", `${name} mounts the shared models volume at modelsDir`);
    assert.equal(mounts.get(config.dataDir), `data-${name.slice(-1)}`, `${name} has a data volume of its own`);
    // A named volume takes the owner of the folder it is mounted on: it must be the image's user's.
    assert.match(dockerfile, new RegExp(`mkdir -p [^\\n]*${config.sharedDataDir} && chown inferno:inferno [^\\n]*${config.sharedDataDir}`));
    assert.ok(
      seconds(svc.stop_grace_period) * 1000 >= config.shutdownGraceMs + 5000,
      `${name}: stop_grace_period leaves the ${config.shutdownGraceMs} ms drain and time to exit`,
    );
    assert.match(svc.healthcheck.test.join(" "), /127\.0\.0\.1:8080\/health\/ready'/);
    assert.equal(svc.depends_on.redis.condition, "service_healthy");
  }
  assert.equal(ids.size, 3, "every replica has its own id");
  assert.match(compose.services["inferno-1"].environment.INFERNO_JWT_SECRET, /^\$\{INFERNO_JWT_SECRET:\?/, "one JWT secret, required");
});

test("compose: Redis 7 with AOF on a volume; nginx in front on 8080 and 8081", () => {
  const redis = compose.services.redis as Doc;
  assert.match(redis.image, /^redis:7/);
  const args = (redis.command as string[]).join(" ");
  assert.match(args, /--appendonly yes/);
  assert.deepEqual(redis.volumes, ["redis-data:/data"]);
  assert.equal(redis.ports, undefined, "Redis is not published");
  const nginx = compose.services.nginx as Doc;
  assert.deepEqual(nginx.volumes, ["./nginx.conf:/etc/nginx/nginx.conf:ro"]);
  assert.deepEqual(nginx.ports.map((p: string) => p.split(":")[1]), ["8080", "8081"]);
  for (const [name] of replicas) assert.equal(nginx.depends_on[name].condition, "service_healthy");
  for (const volume of ["redis-data", "models", "shared", "data-1", "data-2", "data-3"]) assert.ok(volume in compose.volumes, volume);
});

test("prometheus.yml scrapes every replica of the compose file on its own", () => {
  const prom = parse(read("prometheus.yml")) as Doc;
  const targets = prom.scrape_configs[0].static_configs[0].targets as string[];
  assert.deepEqual(targets, replicas.map(([name]) => `${name}:${defaults.port}`));
  assert.equal(prom.scrape_configs[0].metrics_path, "/metrics");
  assert.deepEqual(compose.services.prometheus.volumes, ["./prometheus.yml:/etc/prometheus/prometheus.yml:ro"]);
});

test("nginx.conf: least_conn over the replicas, WebSocket upgrade, unbuffered streams, Inferno's limits", () => {
  const conf = read("nginx.conf").replace(/#.*$/gm, "");
  const block = (name: string) => {
    const m = new RegExp(`${name} \\{([^}]*)\\}`).exec(conf);
    assert.ok(m, `${name} block`);
    return m[1]!;
  };
  for (const [upstream, port] of [["upstream inferno_http", defaults.port], ["upstream inferno_grpc", defaults.grpcPort]] as const) {
    const body = block(upstream);
    assert.match(body, /^\s*least_conn;/m, `${upstream} balances by open connections`);
    const servers = [...body.matchAll(/^\s*server (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(servers, replicas.map(([name]) => `${name}:${port}`));
  }
  assert.match(conf, /listen 8080;/);
  assert.match(conf, /listen 8081 http2;/);
  assert.match(conf, /grpc_pass grpc:\/\/inferno_grpc;/);
  assert.match(conf, /proxy_http_version 1\.1;/);
  assert.match(conf, /proxy_buffering off;/);
  const ws = block("location = /ws");
  assert.match(ws, /proxy_set_header Upgrade \$http_upgrade;/);
  assert.match(ws, /proxy_set_header Connection \$connection_upgrade;/);
  assert.match(conf, /map \$http_upgrade \$connection_upgrade \{\s*default upgrade;/);
  const timeout = (s: string) => Number(/proxy_read_timeout (\d+)s;/.exec(s)?.[1]);
  assert.ok(timeout(conf) * 1000 > defaults.requestTimeoutMs, "a stream may run until requestTimeoutMs");
  assert.ok(timeout(ws) >= timeout(conf));
  assert.equal(Number(/^\s*client_max_body_size (\d+)m;/m.exec(conf)?.[1]) * 1024 * 1024, defaults.bodyLimit, "Inferno's bodyLimit");
  const files = block("location = /v1/files");
  assert.equal(Number(/client_max_body_size (\d+)m;/.exec(files)?.[1]) * 1024 * 1024, MAX_INPUT_BYTES + 1024 * 1024, "the Files API's upload limit");
  assert.equal(Number(/large_client_header_buffers \d+ (\d+)k;/.exec(conf)?.[1]) * 1024, defaults.maxHeaderBytes);
  assert.doesNotMatch(conf, /non_idempotent/, "a POST that reached a replica is never sent to another");
});

const k8s = (file: string) => yamlDocs(`k8s/${file}`);
const [deployment] = k8s("deployment.yaml");

test("k8s: a Deployment of 3 with live/ready/startup probes, drain timing and the image's non-root user", () => {
  assert.equal(deployment!.kind, "Deployment");
  assert.equal(deployment!.spec.replicas, 3);
  assert.equal(deployment!.spec.strategy.rollingUpdate.maxUnavailable, 0);
  const pod = deployment!.spec.template.spec;
  const [c] = pod.containers as Doc[];
  assert.equal(c!.livenessProbe.httpGet.path, "/health/live");
  assert.equal(c!.startupProbe.httpGet.path, "/health/live");
  assert.equal(c!.readinessProbe.httpGet.path, "/health/ready");
  const ports = new Map((c!.ports as Doc[]).map((p) => [p.name, p.containerPort]));
  assert.deepEqual([...ports], [["http", defaults.port], ["grpc", defaults.grpcPort]]);
  for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) assert.ok(ports.has(c![probe].httpGet.port), probe);

  const env = Object.fromEntries((c!.env as Doc[]).map((e) => [e.name, e.value ?? "from-elsewhere"]));
  const config = assertConfigEnv({ ...env, INFERNO_REDIS_URL: "redis://redis:6379", INFERNO_JWT_SECRET: "x".repeat(32), INFERNO_REPLICA_ID: "inferno-7d9f-abcde" }, "deployment.yaml");
  const secretOf = (name: string) => (c!.env as Doc[]).find((e) => e.name === name)?.valueFrom?.secretKeyRef;
  assert.deepEqual(secretOf("INFERNO_REDIS_URL"), { name: "inferno", key: "redis-url" });
  assert.deepEqual(secretOf("INFERNO_JWT_SECRET"), { name: "inferno", key: "jwt-secret" });
  assert.equal((c!.env as Doc[]).find((e) => e.name === "INFERNO_REPLICA_ID")?.valueFrom.fieldRef.fieldPath, "metadata.name");

  const preStop = Number(c!.lifecycle.preStop.exec.command[1]);
  assert.ok(pod.terminationGracePeriodSeconds >= preStop + config.shutdownGraceMs / 1000 + 5, "preStop + drain + time to exit fit before SIGKILL");
  assert.equal(pod.terminationGracePeriodSeconds, 35);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.runAsUser, imageUid);
  assert.equal(imageUid, 10001);
  assert.match(read("k8s/deployment.yaml"), /^\s*# nvidia\.com\/gpu: 1$/m, "the GPU request is there to uncomment");

  const mounts = new Map((c!.volumeMounts as Doc[]).map((m) => [m.mountPath, m.name]));
  const claims = new Map((pod.volumes as Doc[]).map((v) => [v.name, v.persistentVolumeClaim?.claimName]));
  assert.equal(claims.get(mounts.get(config.sharedDataDir!)), "inferno-shared");
  assert.equal(claims.get(mounts.get(config.modelsDir)), "inferno-models");
  assert.ok(mounts.has(config.dataDir));
  for (const pvc of k8s("pvc.yaml")) assert.deepEqual(pvc.spec.accessModes, ["ReadWriteMany"], pvc.metadata.name);
  assert.deepEqual(k8s("pvc.yaml").map((p) => p.metadata.name).sort(), ["inferno-models", "inferno-shared"]);
});

test("k8s: Services, PodDisruptionBudget and Redis select what they mean to; kustomization lists real files", () => {
  const labels = deployment!.spec.template.metadata.labels;
  assert.deepEqual(deployment!.spec.selector.matchLabels, labels);
  for (const svc of k8s("service.yaml")) {
    assert.deepEqual(svc.spec.selector, labels, svc.metadata.name);
    for (const p of svc.spec.ports) assert.ok(["http", "grpc"].includes(p.targetPort));
  }
  const [pdb] = k8s("pdb.yaml");
  assert.deepEqual(pdb!.spec.selector.matchLabels, labels);
  assert.ok(pdb!.spec.minAvailable < deployment!.spec.replicas);
  const [redisSvc, redis] = k8s("redis.yaml");
  assert.equal(redis!.kind, "StatefulSet");
  assert.match(redis!.spec.template.spec.containers[0].args.join(" "), /--appendonly yes/);
  assert.equal(`redis://${redisSvc!.metadata.name}:${redisSvc!.spec.ports[0].port}`, k8s("secret.example.yaml")[0]!.stringData["redis-url"]);
  const annotations = deployment!.spec.template.metadata.annotations;
  assert.equal(annotations["prometheus.io/scrape"], "true");
  assert.equal(Number(annotations["prometheus.io/port"]), defaults.port);
  for (const file of k8s("kustomization.yaml")[0]!.resources as string[]) assert.ok(existsSync(deploy(`k8s/${file}`)), file);
});

// Needs no model: the OpenTelemetry config keys and where spans are sent.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../src/config/config.js";
import { tracesUrl } from "../../src/observability/otel-provider.js";

test("otlpEndpoint: off by default; INFERNO_OTLP_ENDPOINT, else OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT; a bad URL fails at start", () => {
  assert.equal(loadConfig({ env: {} }).otlpEndpoint, undefined);
  assert.equal(loadConfig({ env: {} }).otlpServiceName, "inferno");
  assert.equal(loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318" } }).otlpEndpoint, "http://otel:4318");
  assert.equal(
    loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:4318/v1/traces" } }).otlpEndpoint,
    "http://traces:4318/v1/traces",
  );
  const own = loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318", INFERNO_OTLP_ENDPOINT: "http://mine:4318" } });
  assert.equal(own.otlpEndpoint, "http://mine:4318");
  assert.equal(loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318" }, flags: { otlpEndpoint: "https://flag:4318" } }).otlpEndpoint, "https://flag:4318");
  assert.equal(loadConfig({ env: { OTEL_SERVICE_NAME: "edge-inferno" } }).otlpServiceName, "edge-inferno");
  assert.equal(loadConfig({ env: { OTEL_SERVICE_NAME: "a", INFERNO_OTLP_SERVICE_NAME: "b" } }).otlpServiceName, "b");
  for (const bad of ["not a url", "ftp://otel:21", "grpc://otel:4317"]) {
    assert.throws(() => loadConfig({ env: { INFERNO_OTLP_ENDPOINT: bad } }), /otlpEndpoint/, bad);
  }
});

test("a base endpoint gets /v1/traces; a traces URL is used as it is", () => {
  assert.equal(tracesUrl("http://otel:4318"), "http://otel:4318/v1/traces");
  assert.equal(tracesUrl("http://otel:4318/"), "http://otel:4318/v1/traces");
  assert.equal(tracesUrl("https://gw.example/otlp"), "https://gw.example/otlp/v1/traces");
  assert.equal(tracesUrl("http://otel:4318/v1/traces"), "http://otel:4318/v1/traces");
});

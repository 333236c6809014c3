import swagger, { type FastifyDynamicSwaggerOptions } from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance, RouteOptions } from "fastify";
import fp from "fastify-plugin";
import { jsonSchemaTransform, jsonSchemaTransformObject } from "fastify-type-provider-zod";
import { publicRouteSet } from "../auth/auth-plugin.js";
import { dialectOfUrl, type ErrorDialect } from "../errors/error-handler.js";
import { API_VERSION } from "../core/api-version.js";
import { VERSION } from "../version.js";
import { envelopeSchemas, errorResponse, errorStatuses } from "./error-envelopes.js";
import { REQUEST_EXAMPLES } from "./examples.js";
import { routeDoc, successContent, tagOf, TAGS } from "./route-docs.js";

export interface OpenapiPluginOptions {
  /** GET /metrics is public (--metrics-public): the document says so, as the auth plugin does. */
  metricsPublic: boolean;
}

/** Where the UI lives; its own routes under it (assets, its copy of the document) stay out of the document. */
export const DOCS_PREFIX = "/docs";

/** What the transform of one route leaves for the document pass (`x-` keys are copied onto the operation as they are). */
interface RouteFacts {
  key: string;
  dialect: ErrorDialect;
  statuses: number[];
}
const FACTS = "x-inferno-route";

type Transform = NonNullable<FastifyDynamicSwaggerOptions["transform"]>;
type TransformObject = NonNullable<FastifyDynamicSwaggerOptions["transformObject"]>;
type Schema = Record<string, unknown> & {
  body?: { properties?: Record<string, unknown> };
  description?: string;
  summary?: string;
  tags?: readonly string[];
};

const sentences = (...parts: Array<string | undefined>) => parts.filter(Boolean).join(" ") || undefined;

/**
 * One route's operation: its zod schemas converted (request side, as validated), then its tag, summary,
 * auth and errors from the route's URL and `config` (role, dialect), whatever plugin added it.
 */
function describeRoute(publicRoutes: ReadonlySet<string>): Transform {
  return (input) => {
    const route = input.route as RouteOptions;
    // A plugin's "/" route is registered as both "/prefix" and "/prefix/" on one options object, which ends
    // up with the second URL; the route table (and this document) name it by the first.
    const prefix = (route as { prefix?: string }).prefix;
    const url = prefix && input.url === `${prefix}/` ? prefix : input.url;
    // The UI page is documented; its assets and its copy of the document (whatever the method) are not.
    if (url.startsWith(`${DOCS_PREFIX}/`)) return { schema: { hide: true }, url };
    const given = url === DOCS_PREFIX ? {} : input.schema;
    const converted = given ? { ...jsonSchemaTransform({ ...input, schema: given }), url } : { schema: {}, url };
    const schema = (converted.schema ?? {}) as Schema;
    if (schema.hide) return converted;
    const method = [route.method].flat()[0]!;
    const key = `${method} ${url}`;
    const doc = routeDoc(method, url);
    const isPublic = publicRoutes.has(key);
    const admin = route.config?.role === "admin";
    const dialect = route.config?.dialect ?? dialectOfUrl(url);
    const statuses = errorStatuses({
      dialect,
      isPublic,
      admin,
      hasInput: Boolean(schema.body ?? schema.querystring ?? schema.params),
      namesResource: url.includes(":") || schema.body?.properties?.model !== undefined,
      rateLimited: (route.config as { rateLimit?: unknown } | undefined)?.rateLimit !== false,
    });
    const facts: RouteFacts = { key, dialect, statuses };
    return {
      url,
      schema: {
        ...schema,
        tags: schema.tags ?? [tagOf(url)],
        summary: schema.summary ?? doc.summary,
        description: sentences(
          schema.description ?? doc.description,
          admin ? "**Admin only**: needs a credential with the admin role." : undefined,
          isPublic ? "Public: no credential needed." : undefined,
        ),
        security: isPublic ? [] : [{ bearer: [] }],
        [FACTS]: facts,
      },
    };
  };
}

type Operation = Record<string, unknown> & {
  requestBody?: { content: Record<string, Record<string, unknown>> };
  responses?: Record<string, unknown>;
};

/** The parts a route's schemas cannot carry: special media types, streams, examples, and the error responses. */
function finishOperation(op: Operation, facts: RouteFacts): void {
  const [method, url] = [facts.key.slice(0, facts.key.indexOf(" ")), facts.key.slice(facts.key.indexOf(" ") + 1)];
  const doc = routeDoc(method, url);
  if (doc.requestContent) op.requestBody = { ...op.requestBody, content: doc.requestContent };
  for (const { name, description } of doc.headers ?? []) {
    op.parameters = [...((op.parameters as unknown[]) ?? []), { name, in: "header", required: false, description, schema: { type: "integer", minimum: 0 } }];
  }
  const example = REQUEST_EXAMPLES[facts.key];
  const json = op.requestBody?.content["application/json"];
  if (json && example !== undefined) json.example = example;
  const status = doc.status ?? 200;
  const success = status === 204 ? { description: "No content" } : { description: "Success", content: successContent(doc) };
  // A route that declares response schemas keeps them; @fastify/swagger's placeholder for one that does not goes.
  const placeholder = (r: { description?: string; content?: unknown }) => r.description === "Default Response" && r.content === undefined;
  const declared = Object.entries(op.responses ?? {}).filter(([, r]) => !placeholder(r as { description?: string }));
  op.responses = {
    [status]: success,
    ...Object.fromEntries(facts.statuses.map((s) => [s, errorResponse(s, facts.dialect)])),
    default: errorResponse("default", facts.dialect),
    ...Object.fromEntries(declared),
  };
  // Every request may name the API version it expects; every answer names the server's.
  op.parameters = [...((op.parameters as unknown[]) ?? []), { $ref: "#/components/parameters/ApiVersion" }];
  for (const response of Object.values(op.responses) as Array<{ headers?: Record<string, unknown> }>) {
    response.headers = { ...response.headers, "API-Version": { $ref: "#/components/headers/ApiVersion" } };
  }
}

const finishDocument: TransformObject = (input) => {
  const document = jsonSchemaTransformObject(input) as { paths?: Record<string, Record<string, Operation>> };
  for (const item of Object.values(document.paths ?? {})) {
    for (const op of Object.values(item)) {
      const facts = op[FACTS] as RouteFacts | undefined;
      if (!facts) continue;
      delete op[FACTS];
      finishOperation(op, facts);
    }
  }
  return document;
};

const DESCRIPTION = `One process that serves GGUF and ONNX models over a native REST API, and the OpenAI (/v1),
Ollama (/api) and KServe v2 (/v2) dialects. Errors are coded and come in the envelope of the route's dialect.
When auth is on, every route but the public ones needs \`Authorization: Bearer <API key or JWT>\`.`;

async function openapi(app: FastifyInstance, opts: OpenapiPluginOptions): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "Inferno", version: VERSION, description: DESCRIPTION },
      tags: TAGS,
      components: {
        securitySchemes: {
          bearer: {
            type: "http",
            scheme: "bearer",
            description: "An API key (`inf_...`, from `inferno security api-key` or POST /auth/api-keys) or a JWT from POST /auth/login.",
          },
        },
        schemas: envelopeSchemas as unknown as Record<string, object>,
        parameters: {
          ApiVersion: {
            name: "API-Version",
            in: "header",
            required: false,
            description: `The API version the client expects (\`MAJOR[.MINOR]\`); another major than ${API_VERSION.split(".")[0]} is 400 UNSUPPORTED_API_VERSION.`,
            schema: { type: "string", example: API_VERSION },
          },
        },
        headers: {
          ApiVersion: { description: "The API version this server speaks.", schema: { type: "string", example: API_VERSION } },
        },
      },
    },
    transform: describeRoute(publicRouteSet(opts.metricsPublic)),
    transformObject: finishDocument,
  });
  // Served from the package's own files: the page works offline and loads nothing from a CDN.
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, theme: { title: "Inferno API" }, uiConfig: { deepLinking: true } });
  app.get("/openapi.json", async () => app.swagger());
}

/**
 * The OpenAPI 3.1 document (GET /openapi.json) and its page (GET /docs), both public. Registered before
 * any route: @fastify/swagger collects routes in an onRoute hook, so every route added later is documented.
 */
export const openapiPlugin = fp(openapi, { name: "inferno-openapi", fastify: "5.x" });

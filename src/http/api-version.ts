// `API-Version` on every HTTP response, and the refusal of a request that asks for another major
// (README, API versioning). Registered before every other hook, so even a CORS preflight or an
// authentication failure carries the header; errors raised before any hook (router refusals) get it
// from the error handler, and WebSocket upgrades from the websocket plugin.
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { API_VERSION, checkApiVersion } from "../core/api-version.js";

async function apiVersionPlugin(app: FastifyInstance): Promise<void> {
  app.addHook("onRequest", async (request, reply) => {
    reply.header("api-version", API_VERSION);
    const asked = request.headers["api-version"];
    try {
      // Node joins repeated headers with ", ": two values are malformed, as one bad value is.
      checkApiVersion(Array.isArray(asked) ? asked.join(", ") : asked);
    } catch (err) {
      // A refused WebSocket upgrade: this hook runs before @fastify/websocket's, which would otherwise
      // end the upgrade's socket after the answer; left open, it would hold the server's close.
      if (request.headers.upgrade !== undefined) reply.raw.once("finish", () => request.raw.socket.destroySoon());
      throw err;
    }
  });
}

export default fp(apiVersionPlugin, { name: "inferno-api-version", fastify: "5.x" });

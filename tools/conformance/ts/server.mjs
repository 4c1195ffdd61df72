// One replica of an MCP server built on the official TypeScript SDK (1.32.2), for the conformance
// run: `node server.mjs --port P --name N [--stateless]`, listening on 127.0.0.1 only.
//
// Stateful (the SDK's documented default): `sessionIdGenerator: () => randomUUID()` (after the
// prefix in MCP_SESSION_ID_PREFIX, if set, as a Cloud Run session shard asks), one transport
// per session kept in this process's Map; an unknown session id gets 404, as the MCP transport
// specification says. Stateless: `sessionIdGenerator: undefined`, a transport per request, GET
// and DELETE answer 405 (as in the SDK's stateless examples). Every response carries
// `X-Replica: <name>`; the tool `whoami` returns the name.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";

function option(flag) {
  const index = process.argv.indexOf(flag);
  return index < 0 ? undefined : process.argv[index + 1];
}

const port = Number(option("--port"));
const name = option("--name");
const stateless = process.argv.includes("--stateless");
const transports = new Map();

function newServer() {
  const server = new McpServer({ name: "conformance", version: "1.0.0" });
  server.registerTool("whoami", { description: "The replica's name" }, async () => ({
    content: [{ type: "text", text: name }],
  }));
  return server;
}

function reply(res, status, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString();
  return text ? JSON.parse(text) : undefined;
}

async function handle(req, res) {
  res.setHeader("X-Replica", name);
  const path = new URL(req.url, "http://127.0.0.1").pathname;
  if (path === "/healthz") return reply(res, 200, "ok"); // the planned probes' and proxy checks' path
  if (path !== "/mcp") return reply(res, 404, "Not found");
  const body = req.method === "POST" ? await readJson(req) : undefined;
  if (stateless) {
    if (req.method !== "POST") return reply(res, 405, "Method not allowed");
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    const server = newServer();
    res.on("close", () => { transport.close(); server.close(); });
    await server.connect(transport);
    return transport.handleRequest(req, res, body);
  }
  const id = req.headers["mcp-session-id"];
  if (id) {
    const transport = transports.get(id);
    return transport ? transport.handleRequest(req, res, body) : reply(res, 404, "Session not found");
  }
  if (req.method !== "POST" || !isInitializeRequest(body)) return reply(res, 400, "Bad Request: no session id");
  const transport = new StreamableHTTPServerTransport({
    // The operator chooses the ids: a session shard starts each with its key (shardPrefixBy: server).
    sessionIdGenerator: () => (process.env.MCP_SESSION_ID_PREFIX ?? "") + randomUUID(),
    onsessioninitialized: (sessionId) => transports.set(sessionId, transport),
  });
  transport.onclose = () => { if (transport.sessionId) transports.delete(transport.sessionId); };
  await newServer().connect(transport);
  return transport.handleRequest(req, res, body);
}

http.createServer((req, res) => {
  handle(req, res).catch((error) => { if (!res.headersSent) reply(res, 500, String(error)); });
}).listen(port, "127.0.0.1");

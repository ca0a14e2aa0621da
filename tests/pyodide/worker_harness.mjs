// Runs a Python Worker (a module directory such as `wrangler deploy --dry-run --outdir DIR`'s
// output, or worker/ itself) inside real Pyodide with the real `workers` SDK, calling it the way
// workerd does: per request `Default(ctx, env)`, the JS Request through
// `workers.python_from_rpc`, the handler through `pyodide.code.relaxed_call`, the result back
// through `workers.python_to_rpc`; `scheduled(controller, env, ctx)` gets the raw JS objects.
// Every `ctx.waitUntil` awaitable is retained (owned copy) and awaited.
//
// Batch mode: run a list of requests and print one `@@RESULT {"responses": [...]}` line.
//   node tests/pyodide/worker_harness.mjs --pyodide 0.28|314 --worker-dir DIR [--main entry]
//        [--env-json '{...}'] --requests-json '[{"method": "GET", "path": "/x"}, ...]'
//   A request is {method?, path, headers?, body?, cf?} (cf: the `request.cf` object workerd would
//   set, e.g. {"country": "FR"}) or {scheduled: true, cron?}; each answer is
//   {status, headers, body, wait_until: {count, errors}, ms} (or {error} if the Worker threw).
//
// Serve mode (`make dev-worker`): an HTTP server on loopback forwarding to the Worker.
//   node tests/pyodide/worker_harness.mjs --pyodide 0.28|314 --worker-dir DIR --serve
//        [--port 8787] [--host 127.0.0.1] [--env-json '{...}']
//   Prints one line `{"url": "http://127.0.0.1:PORT"}` on stdout when ready (Python's own
//   output goes to stderr). `GET /__scheduled?cron=...` runs `scheduled`, like `wrangler dev`.
import http from "node:http";
import path from "node:path";
import { bootPyodide, ExecutionContext, parseArgs } from "./pyodide_runtime.mjs";

const WORKER_MOUNT = "/worker";

const DISPATCH = `
import importlib
import inspect

import workers
from pyodide.code import relaxed_call

_entry = importlib.import_module(_harness_main)


async def _await_if_needed(value):
    return await value if inspect.isawaitable(value) else value


async def _harness_fetch(js_request, env, ctx):
    instance = _entry.Default(ctx, env)
    request = workers.python_from_rpc(js_request)
    result = await _await_if_needed(relaxed_call(instance.fetch, request))
    return workers.python_to_rpc(result)


async def _harness_scheduled(controller, env, ctx):
    instance = _entry.Default(ctx, env)
    await _await_if_needed(relaxed_call(instance.scheduled, controller, env, ctx))
`;

/**
 * Boots Pyodide, mounts `workerDir` at /worker (first on sys.path) and imports module `main`.
 * Returns {fetch(request) -> {response, ctx}, scheduled({cron, scheduledTime}) -> {ctx}, pyodide}.
 * `ctx.drain()` awaits the waitUntil work of that invocation.
 */
export async function loadWorker({ version, workerDir, main = "entry", env = {}, compatFlags, stdoutStream }) {
  const { pyodide } = await bootPyodide({
    version,
    env,
    compatFlags,
    stdoutStream,
    mounts: { [WORKER_MOUNT]: path.resolve(workerDir) },
  });
  const ns = pyodide.globals.get("dict")();
  ns.set("_harness_main", main);
  await pyodide.runPythonAsync(DISPATCH, { globals: ns });
  const pyFetch = ns.get("_harness_fetch");
  const pyScheduled = ns.get("_harness_scheduled");

  async function fetch(request) {
    const ctx = new ExecutionContext();
    const response = await pyFetch(request, env, ctx);
    return { response, ctx };
  }

  async function scheduled({ cron = "* * * * *", scheduledTime = Date.now() } = {}) {
    const ctx = new ExecutionContext();
    const controller = { type: "scheduled", cron, scheduledTime, noRetry() {} };
    await pyScheduled(controller, env, ctx);
    return { ctx };
  }

  return { fetch, scheduled, pyodide };
}

function headersObject(headers) {
  const out = {};
  for (const [name, value] of headers) out[name] = value;
  return out;
}

async function runBatch(worker, requests, baseUrl) {
  const responses = [];
  for (const spec of requests) {
    const started = performance.now();
    const entry = {};
    try {
      let ctx;
      if (spec.scheduled) {
        ({ ctx } = await worker.scheduled({ cron: spec.cron }));
      } else {
        const method = (spec.method ?? "GET").toUpperCase();
        const init = { method, headers: spec.headers ?? {} };
        if (spec.body !== undefined && method !== "GET" && method !== "HEAD") init.body = spec.body;
        const request = new Request(new URL(spec.path ?? "/", baseUrl), init);
        // workerd sets `request.cf` (country, colo, ...) on incoming requests; Node does not
        if (spec.cf !== undefined) Object.defineProperty(request, "cf", { value: spec.cf });
        const result = await worker.fetch(request);
        ctx = result.ctx;
        entry.status = result.response.status;
        entry.headers = headersObject(result.response.headers);
        entry.body = await result.response.text();
      }
      entry.wait_until = await ctx.drain();
    } catch (err) {
      entry.error = String(err?.message ?? err);
    }
    entry.ms = Math.round((performance.now() - started) * 10) / 10;
    responses.push(entry);
  }
  return responses;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function serve(worker, { host, port }) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, `http://${req.headers.host ?? `${host}:${port}`}`);
    try {
      if (url.pathname === "/__scheduled") {
        const { ctx } = await worker.scheduled({ cron: url.searchParams.get("cron") ?? "* * * * *" });
        const { errors } = await ctx.drain();
        res.writeHead(errors.length ? 500 : 200, { "content-type": "text/plain" });
        res.end(errors.length ? errors.join("\n") : "Ran scheduled event");
        return;
      }
      const headers = new Headers();
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
      const body = await readBody(req);
      const init = { method: req.method, headers };
      if (!["GET", "HEAD"].includes(req.method) && body.length) init.body = body;
      const { response, ctx } = await worker.fetch(new Request(url, init));
      const outHeaders = [];
      for (const [name, value] of response.headers) {
        if (name !== "set-cookie") outHeaders.push([name, value]);
      }
      for (const cookie of response.headers.getSetCookie?.() ?? []) outHeaders.push(["set-cookie", cookie]);
      const payload = Buffer.from(await response.arrayBuffer());
      res.writeHead(response.status, outHeaders.flat());
      res.end(payload);
      // Like workerd: the response is sent, the invocation lives on until waitUntil settles.
      ctx.drain().then(({ errors }) => {
        for (const e of errors) console.error(`waitUntil failed: ${e}`);
      });
    } catch (err) {
      console.error(`worker threw: ${err?.message ?? err}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`Worker threw an exception:\n${err?.message ?? err}`);
    }
  });
  return new Promise((resolve) => {
    server.listen(port, host, () => resolve(server));
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args.pyodide || !args["worker-dir"] || (!args.serve && !args["requests-json"])) {
    console.error(
      "usage: worker_harness.mjs --pyodide 0.28|314 --worker-dir DIR [--main entry] [--env-json JSON]\n" +
        "       (--requests-json JSON | --serve [--port 8787] [--host 127.0.0.1])",
    );
    return 3;
  }
  const env = args["env-json"] ? JSON.parse(args["env-json"]) : {};
  const started = performance.now();
  const worker = await loadWorker({
    version: args.pyodide,
    workerDir: args["worker-dir"],
    main: typeof args.main === "string" ? args.main : "entry",
    env,
    stdoutStream: args.serve ? process.stderr : process.stdout,
  });
  const bootMs = Math.round(performance.now() - started);
  if (args.serve) {
    const host = typeof args.host === "string" ? args.host : "127.0.0.1";
    const server = await serve(worker, { host, port: Number(args.port ?? 8787) });
    const { port } = server.address();
    console.error(`worker_harness: pyodide ${args.pyodide} booted in ${bootMs} ms`);
    process.stdout.write(`${JSON.stringify({ url: `http://${host}:${port}` })}\n`);
    const stop = () => server.close(() => process.exit(0));
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    return null; // keep serving
  }
  const requests = JSON.parse(args["requests-json"]);
  const responses = await runBatch(worker, requests, args["base-url"] ?? "http://127.0.0.1:8787");
  process.stdout.write(`@@RESULT ${JSON.stringify({ boot_ms: bootMs, responses })}\n`);
  return 0;
}

// Exits once stdout has taken everything written before: on a pipe, `process.exit` right
// after a large write loses its tail (a result line past 64 KB arrived cut).
export function exitAfterFlush(code) {
  process.stdout.write("", () => process.exit(code));
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname;
if (isMain) {
  main().then(
    (code) => {
      if (code !== null) exitAfterFlush(code);
    },
    (err) => {
      console.error(`worker_harness: ${err?.stack ?? err}`);
      process.exit(2);
    },
  );
}

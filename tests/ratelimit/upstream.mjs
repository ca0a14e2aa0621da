// The official @upstash/ratelimit as a line-driven oracle: multi-region, protection, analytics.
//
//   node tests/ratelimit/upstream.mjs '{"urls": [...], "token": ..., "prefix": ...,
//       "algorithm": "fixed"|"sliding", "limit": 10, "window": "1 d", "multi": true,
//       "protection": false, "analytics": false, "ipListUrl"?: "http://127.0.0.1:PORT/..."}'
//
// Each stdin line is one JSON command, answered by one JSON line; "ready" is printed first.
//   {"op": "limit", "id": ..., "ip"?, "userAgent"?, "country"?}
//       -> {"success", "limit", "remaining", "reset", "reason", "deniedValue"}
//   {"op": "usage"}                 -> ratelimit.analytics.getUsage()
//   {"op": "most", "hours": 24}     -> ratelimit.analytics.getMostAllowedBlocked(hours)
//   {"op": "deny", "values": [...]} -> SADD to upstream's deny list key (as its own tests do)
import { createInterface } from "node:readline";
import { MultiRegionRatelimit, Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";

const config = JSON.parse(process.argv[2]);
// Upstream fetches its automatic IP list from GitHub; tests serve it locally instead
// ("ipListUrl"), so nothing here ever leaves the machine.
if (config.ipListUrl) {
  const realFetch = globalThis.fetch;
  globalThis.fetch = (url, init) =>
    realFetch(String(url).startsWith("https://raw.githubusercontent.com/") ? config.ipListUrl : url, init);
}
const clients = config.urls.map(
  (url) => new Redis({ url, token: config.token, enableTelemetry: false }),
);
const Kind = config.multi ? MultiRegionRatelimit : Ratelimit;
const limiter =
  config.algorithm === "sliding"
    ? Kind.slidingWindow(config.limit, config.window)
    : Kind.fixedWindow(config.limit, config.window);
const ratelimit = new Kind({
  redis: config.multi ? clients : clients[0],
  limiter,
  prefix: config.prefix,
  ephemeralCache: config.multi ? undefined : false,
  enableProtection: Boolean(config.protection),
  analytics: Boolean(config.analytics),
  timeout: 10000,
});

async function run(command) {
  switch (command.op) {
    case "limit": {
      const r = await ratelimit.limit(command.id, {
        ip: command.ip,
        userAgent: command.userAgent,
        country: command.country,
      });
      let pendingError = null;
      try {
        await r.pending;
      } catch (error) {
        pendingError = String(error);
      }
      return {
        success: r.success,
        limit: r.limit,
        remaining: r.remaining,
        reset: r.reset,
        reason: r.reason ?? null,
        deniedValue: r.deniedValue ?? null,
        pendingError,
      };
    }
    case "usage":
      return await ratelimit.analytics.getUsage();
    case "most":
      return await ratelimit.analytics.getMostAllowedBlocked(command.hours ?? 24);
    case "deny":
      return await clients[0].sadd(`${config.prefix}:denyList:all`, ...command.values);
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

process.stdout.write("ready\n");
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    process.stdout.write(JSON.stringify(await run(JSON.parse(line))) + "\n");
  } catch (error) {
    process.stdout.write(JSON.stringify({ error: String(error) }) + "\n");
  }
}

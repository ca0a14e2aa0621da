// The official @upstash/ratelimit as a line-driven oracle for the interop tests.
//
//   node tests/ratelimit/interop.mjs '{"url":..., "token":..., "prefix":..., "algorithm":
//       "fixed"|"sliding"|"token", "limit": 10, "window": "1 d"}'
//
// Each stdin line is an identifier; the script answers one JSON line per call:
// {"success", "limit", "remaining", "reset", "reason"}. "ready" is printed first.
import { createInterface } from "node:readline";
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";

const config = JSON.parse(process.argv[2]);
const redis = new Redis({ url: config.url, token: config.token, enableTelemetry: false });
const limiters = {
  fixed: () => Ratelimit.fixedWindow(config.limit, config.window),
  sliding: () => Ratelimit.slidingWindow(config.limit, config.window),
  token: () => Ratelimit.tokenBucket(config.refill ?? 1, config.window, config.limit),
};
const ratelimit = new Ratelimit({
  redis,
  limiter: limiters[config.algorithm](),
  prefix: config.prefix,
  ephemeralCache: false,
  enableProtection: false,
});

process.stdout.write("ready\n");
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const identifier = line.trim();
  if (!identifier) continue;
  try {
    const r = await ratelimit.limit(identifier);
    await r.pending;
    const answer = { success: r.success, limit: r.limit, remaining: r.remaining, reset: r.reset, reason: r.reason ?? null };
    process.stdout.write(JSON.stringify(answer) + "\n");
  } catch (error) {
    process.stdout.write(JSON.stringify({ error: String(error) }) + "\n");
  }
}

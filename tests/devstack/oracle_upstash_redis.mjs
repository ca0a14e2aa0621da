// The official @upstash/redis (npm) against the devstack REST server, unchanged.
// Usage: node oracle_upstash_redis.mjs URL TOKEN PREFIX  -> prints one JSON line of results.
import { Redis } from "@upstash/redis";

const [url, token, p] = process.argv.slice(2);
const redis = new Redis({ url, token, automaticDeserialization: false, enableTelemetry: false });
const out = {};
out.set = await redis.set(`${p}a`, "hello", { ex: 60 });
out.get = await redis.get(`${p}a`);
out.incr = await redis.incr(`${p}n`);
out.hset = await redis.hset(`${p}h`, { f1: "v1", f2: "v2" });
out.hgetall = await redis.hgetall(`${p}h`);
out.zadd = await redis.zadd(`${p}z`, { score: 1.5, member: "m" });
out.zrange = await redis.zrange(`${p}z`, 0, -1, { withScores: true });
const pipe = redis.pipeline();
pipe.set(`${p}pp`, "1");
pipe.incr(`${p}pp`);
pipe.get(`${p}pp`);
out.pipeline = await pipe.exec();
const tx = redis.multi();
tx.incr(`${p}tx`);
tx.incr(`${p}tx`);
out.multi = await tx.exec();
out.eval = await redis.eval("return ARGV[1]", [], ["from-lua"]);
const script = redis.createScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");
out.script = [await script.exec([`${p}sc`], ["2"]), await script.exec([`${p}sc`], ["3"])];
out.scan = await redis.scan(0, { match: `${p}*`, count: 1000 });
out.ping = await redis.ping();
const auto = new Redis({ url, token, enableAutoPipelining: true, enableTelemetry: false });
out.auto = await Promise.all([auto.incr(`${p}auto`), auto.incr(`${p}auto`), auto.get(`${p}auto`)]);
console.log(JSON.stringify(out));

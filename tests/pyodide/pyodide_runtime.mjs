// Boots a real Pyodide (from node_modules, no network) with the real `workers` SDK
// (PyPI `workers-runtime-sdk`) importable, the way workerd sets it up for a Python Worker.
// Shared by harness.mjs (run a check script) and worker_harness.mjs (serve a Worker).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, "..", "..");

// Pyodide npm aliases in package.json: version label -> package dir under node_modules.
export const PYODIDE_PACKAGES = { "0.28": "pyodide-0.28", "314": "pyodide-314" };

// The `workers` SDK release loaded into Pyodide (newest on PyPI when pinned).
export const WORKERS_SDK_VERSION = "1.9.5";
export const WORKERS_SDK_DIR = path.join(HERE, ".cache", `workers-sdk-${WORKERS_SDK_VERSION}`);

// Compatibility flags the SDK reads through `_cloudflare_compat_flags` (missing -> False).
export const DEFAULT_COMPAT_FLAGS = {};

function run(cmd, args) {
  const res = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000 });
  return { ok: res.status === 0, detail: `${cmd} ${args.join(" ")}: ${res.error ?? res.stderr}` };
}

/** Installs workers-runtime-sdk into WORKERS_SDK_DIR unless it is already there. */
export function ensureWorkersSdk() {
  if (fs.existsSync(path.join(WORKERS_SDK_DIR, "workers", "__init__.py"))) return WORKERS_SDK_DIR;
  const tmp = `${WORKERS_SDK_DIR}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const spec = `workers-runtime-sdk==${WORKERS_SDK_VERSION}`;
  const uvArgs = ["pip", "install", "--quiet", "--no-deps", "--python-version", "3.13", "--target", tmp, spec];
  const pipArgs = ["-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
    "--python-version", "3.13", "--target", tmp, spec];
  const candidates = [["uv", uvArgs]];
  const basePy = path.join(REPO_ROOT, ".venv", ".python-path"); // written by `make setup`
  if (fs.existsSync(basePy)) {
    const py = fs.readFileSync(basePy, "utf8").trim();
    candidates.push([py, ["-m", "uv", ...uvArgs]], [py, pipArgs]);
  }
  candidates.push([path.join(REPO_ROOT, ".venv", "bin", "python"), pipArgs], ["python3", pipArgs]);
  const errors = [];
  for (const [cmd, args] of candidates) {
    const res = run(cmd, args);
    if (res.ok && fs.existsSync(path.join(tmp, "workers", "__init__.py"))) {
      try {
        fs.renameSync(tmp, WORKERS_SDK_DIR);
      } catch (err) {
        // A concurrent run installed it first; keep theirs.
        fs.rmSync(tmp, { recursive: true, force: true });
        if (!fs.existsSync(WORKERS_SDK_DIR)) throw err;
      }
      return WORKERS_SDK_DIR;
    }
    errors.push(res.detail.trim());
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  throw new Error(`could not install ${spec} into ${WORKERS_SDK_DIR}:\n${errors.join("\n")}`);
}

/** A JS stand-in for workerd's ExecutionContext that records what `waitUntil` receives. */
export class ExecutionContext {
  constructor() {
    this.pending = [];
  }
  get [Symbol.toStringTag]() {
    return "ExecutionContext";
  }
  waitUntil(promise) {
    this.pending.push(Promise.resolve(promise));
  }
  passThroughOnException() {}
  /** Waits for every waitUntil promise, including ones registered while waiting. */
  async drain() {
    const errors = [];
    let done = 0;
    while (done < this.pending.length) {
      const batch = this.pending.slice(done);
      done = this.pending.length;
      for (const r of await Promise.allSettled(batch)) {
        if (r.status === "rejected") errors.push(String(r.reason?.stack ?? r.reason));
      }
    }
    return { count: done, errors };
  }
}

// workerd's getPatchedWaitUntil: Python hands waitUntil a *borrowed* proxy that is destroyed
// when the call returns, so take an owned copy synchronously and release it once settled.
function retaining(waitUntil) {
  return (awaitable) => {
    const owned = awaitable && typeof awaitable.copy === "function" ? awaitable.copy() : awaitable;
    waitUntil(
      (async () => {
        try {
          await owned;
        } finally {
          if (owned && typeof owned.destroy === "function") owned.destroy();
        }
      })(),
    );
  };
}

const patched = new WeakSet();
function patchWaitUntil(ctx) {
  if (Object.prototype.toString.call(ctx) !== "[object ExecutionContext]") return;
  if (patched.has(ctx)) return;
  ctx.waitUntil = retaining(ctx.waitUntil.bind(ctx));
  patched.add(ctx);
}

/**
 * Loads Pyodide `version` ("0.28" | "314") from node_modules, mounts the repo at /repo and the
 * workers SDK at /workers-sdk (both on sys.path), and registers the JS modules workerd injects.
 * `env` becomes `cloudflare:workers`.env; the global waitUntil lands in `globalCtx`. Python's
 * stdout goes line by line to `stdoutStream` (and `onStdout`), its stderr to process.stderr.
 */
export async function bootPyodide({
  version,
  env = {},
  compatFlags = DEFAULT_COMPAT_FLAGS,
  mounts = {},
  onStdout = null,
  stdoutStream = process.stdout,
}) {
  const pkg = PYODIDE_PACKAGES[version];
  if (!pkg) throw new Error(`unknown Pyodide version ${version}; use one of ${Object.keys(PYODIDE_PACKAGES)}`);
  const indexDir = path.join(REPO_ROOT, "node_modules", pkg);
  if (!fs.existsSync(path.join(indexDir, "pyodide.mjs"))) {
    throw new Error(`${indexDir} is missing: run \`make setup\` (npm ci) first`);
  }
  const sdkDir = ensureWorkersSdk();
  const { loadPyodide } = await import(pathToFileURL(path.join(indexDir, "pyodide.mjs")).href);
  const pyodide = await loadPyodide({
    indexURL: `${indexDir}${path.sep}`,
    packages: [],
    stdout: (line) => {
      onStdout?.(line);
      stdoutStream.write(`${line}\n`);
    },
    stderr: (line) => process.stderr.write(`${line}\n`),
    env: { PYTHONDONTWRITEBYTECODE: "1" },
  });
  const { FS } = pyodide;
  const allMounts = { "/repo": REPO_ROOT, "/workers-sdk": sdkDir, ...mounts };
  for (const [target, hostDir] of Object.entries(allMounts)) {
    FS.mkdirTree(target);
    FS.mount(FS.filesystems.NODEFS, { root: hostDir }, target);
  }
  const globalCtx = new ExecutionContext();
  patchWaitUntil(globalCtx);
  pyodide.registerJsModule("_pyodide_entrypoint_helper", {
    cloudflareWorkersModule: { env, waitUntil: (p) => globalCtx.waitUntil(p) },
    cloudflareSocketsModule: {},
    doAnImport: async (name) => {
      throw new Error(`JavaScript module import is not available in the offline harness: ${name}`);
    },
    patchWaitUntil,
    patch_env_helper: () => {
      throw new Error("workers.patch_env is not available in the offline harness");
    },
  });
  pyodide.registerJsModule("_cloudflare_compat_flags", { ...compatFlags });
  const sysPath = Object.keys(mounts).concat(["/repo", "/workers-sdk"]);
  pyodide.globals.set("_harness_sys_path", pyodide.toPy(sysPath));
  pyodide.runPython(`
import sys
sys.dont_write_bytecode = True  # /repo is the real checkout: never write __pycache__ into it
for _p in reversed(list(_harness_sys_path)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
del _p, _harness_sys_path
`);
  return { pyodide, globalCtx };
}

/** Parses `--name value` pairs (and bare `--flag`s) from argv. */
export function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`);
    const key = arg.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) out[key] = true;
    else {
      out[key] = next;
      i++;
    }
  }
  return out;
}

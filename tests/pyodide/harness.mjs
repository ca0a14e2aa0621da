// Runs a Python check script inside real Pyodide (offline) with the `workers` SDK importable.
//
//   node tests/pyodide/harness.mjs --pyodide 0.28|314 --script path/to/script.py [--env-json '{...}']
//
// The script runs with top-level await; `ENV` is a dict of the --env-json values. It reports by
// printing one line `@@RESULT {"passed": [...], "failed": [{"name", "error"}], "data": {...}}`
// (tests/pyodide/pyodide_checks.py does this). Exit code: 0 when the line arrived and nothing
// failed, 1 when a check failed, 2 when the script raised or never reported, 3 on bad usage.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bootPyodide, parseArgs, REPO_ROOT } from "./pyodide_runtime.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const RESULT_PREFIX = "@@RESULT ";

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args.pyodide || !args.script) {
    console.error("usage: harness.mjs --pyodide 0.28|314 --script FILE.py [--env-json JSON]");
    return 3;
  }
  const env = args["env-json"] ? JSON.parse(args["env-json"]) : {};
  const scriptPath = path.resolve(args.script);
  const code = fs.readFileSync(scriptPath, "utf8");
  const started = performance.now();
  let result = null;
  const { pyodide } = await bootPyodide({
    version: args.pyodide,
    env,
    onStdout: (line) => {
      if (line.startsWith(RESULT_PREFIX)) result = JSON.parse(line.slice(RESULT_PREFIX.length));
    },
  });
  const booted = performance.now();
  pyodide.globals.set("ENV", pyodide.toPy(env));
  // Make pyodide_checks.py (next to this file) and modules next to the script importable.
  const inRepo = (dir) => {
    const rel = path.relative(REPO_ROOT, dir);
    return rel.startsWith("..") ? null : path.posix.join("/repo", ...rel.split(path.sep));
  };
  for (const dir of [HERE, path.dirname(scriptPath)].map(inRepo).filter(Boolean)) {
    pyodide.runPython(`import sys; sys.path.insert(0, ${JSON.stringify(dir)})`);
  }
  try {
    await pyodide.runPythonAsync(code, { filename: scriptPath });
  } catch (err) {
    console.error(`harness: the script raised:\n${err?.message ?? err}`);
    return 2;
  } finally {
    const done = performance.now();
    console.error(
      `harness: pyodide ${args.pyodide} boot ${(booted - started).toFixed(0)} ms, ` +
        `script ${(done - booted).toFixed(0)} ms`,
    );
  }
  if (result === null) {
    console.error(`harness: the script printed no ${RESULT_PREFIX.trim()} line`);
    return 2;
  }
  return result.failed?.length ? 1 : 0;
}

// Exit explicitly (a hung fetch abandoned by a timeout check must not keep Node alive), once
// stdout has taken the result line: on a pipe, an exit right after a large write cuts it.
main().then(
  (code) => process.stdout.write("", () => process.exit(code)),
  (err) => {
    console.error(`harness: ${err?.stack ?? err}`);
    process.exit(2);
  },
);

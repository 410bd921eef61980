// Runs a flow module under Bun the way a Windmill worker does: the script is
// written as main.ts in a fresh job directory holding the workspace's f/ tree
// (what relative imports resolve against) and nothing else (no node_modules,
// as the lock declares no dependencies); a wrapper imports it and calls main
// with the arguments by name, in the order of its schema.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type Executor, parameterOrder, ROOT } from "../../cli/flow.ts";

export const BUN = join(ROOT, "node_modules", ".bin", "bun");
const RESULT_MARK = "__WINDMILL_RESULT__";

const WRAPPER = `
import { readFileSync } from "node:fs";
const { scriptDir, order, args } = JSON.parse(readFileSync("./args.json", "utf8"));
const { main } = await import(\`./\${scriptDir}/main.ts\`);
const result = await main(...order.map((name) => args[name]));
console.log(${JSON.stringify(RESULT_MARK)} + JSON.stringify(result ?? null));
`;

export interface BunRun {
  stdout: string;
  stderr: string;
}

export function bunExecutor(env: NodeJS.ProcessEnv, log: BunRun[] = []): Executor {
  return (module, args) => {
    const job = mkdtempSync(join(tmpdir(), "windmill-job-"));
    cpSync(join(ROOT, "f"), join(job, "f"), { recursive: true });
    const scriptDir = dirname(module.path);
    writeFileSync(join(job, scriptDir, "main.ts"), readFileSync(join(ROOT, `${module.path}.ts`)));
    writeFileSync(join(job, "args.json"), JSON.stringify({ scriptDir, order: parameterOrder(module.path), args }));
    writeFileSync(join(job, "wrapper.ts"), WRAPPER);
    return new Promise((resolve, reject) => {
      execFile(BUN, ["run", "wrapper.ts"], { cwd: job, env, maxBuffer: 64 << 20, timeout: 600_000 }, (error, stdout, stderr) => {
        rmSync(job, { recursive: true, force: true });
        log.push({ stdout, stderr });
        const line = stdout.split("\n").find((l) => l.startsWith(RESULT_MARK));
        if (error || !line) {
          reject(new Error(`${module.id} failed under Bun (${error?.message ?? "no result"}):\n${stderr}`));
          return;
        }
        resolve(JSON.parse(line.slice(RESULT_MARK.length)));
      });
    });
  };
}

// What the end-to-end scripts share: a free port, the latchkey binary
// served on it, Debian's Chromium driven by playwright-core, and the
// script's outcome as one "N passed, M failed" line and its exit code.
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function check(condition, message) {
  if (!condition) throw new Error("FAILED: " + message);
  console.log("ok - " + message);
}

/** The script's arguments, or its usage line and exit 2. */
export function args(script, names) {
  const values = process.argv.slice(2);
  const required = names.filter((name) => !name.startsWith("[")).length;
  if (values.length < required) {
    console.error(`usage: node ${script} ${names.join(" ")}`);
    process.exit(2);
  }
  return values;
}

/** `latchkey serve` on a free port (or `port`, when a script must know it
 * before the server starts) in a temporary folder, with `env` added and what
 * `atBase(base)` adds for its own address; `ready()` waits for /healthz. */
export async function serve(binary, databaseUrl, env = {}, atBase = () => ({}), port = undefined) {
  port = port || await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(binary, ["serve"], {
    cwd: mkdtempSync(join(tmpdir(), "latchkey-e2e-")),
    env: {
      PATH: process.env.PATH, BIND: `127.0.0.1:${port}`, DATABASE_URL: databaseUrl,
      BCRYPT_COST: "4", RUST_LOG: "warn", ...env, ...atBase(base),
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  return {
    port,
    base,
    async ready() {
      for (let i = 0; i < 100; i++) {
        try { if ((await fetch(base + "/healthz")).ok) return; } catch { /* not yet */ }
        await sleep(100);
      }
    },
    stop() { child.kill("SIGTERM"); },
  };
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Runs `scenario(browser)`, then `cleanup()`, and exits 0 or 1 with the
 * one-line summary. */
export async function run(scenario, cleanup) {
  let browser;
  let failed = false;
  try {
    browser = await launch();
    await scenario(browser);
    console.log("1 passed, 0 failed");
  } catch (error) {
    failed = true;
    console.error(error);
    console.log("0 passed, 1 failed");
  } finally {
    if (browser) await browser.close();
    cleanup();
  }
  process.exit(failed ? 1 : 0);
}

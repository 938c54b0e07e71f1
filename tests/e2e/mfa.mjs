// End-to-end test of the /demo/ page's second factor in a real browser:
// set up TOTP (the secret shown, a code confirms it, the recovery codes
// shown once), log out, log in again through the second step with a TOTP
// code and then with a recovery code, turn TOTP off. Codes come from pyotp
// (tests/django/totp_code.py in the tests' Django venv), never from latchkey.
//
// usage: node mfa.mjs BINARY DATABASE_URL SCREENSHOT [PYTHON]
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { args, check, run, serve } from "./harness.mjs";

const [binary, databaseUrl, screenshot, pythonArg] =
  args("mfa.mjs", ["BINARY", "DATABASE_URL", "SCREENSHOT", "[PYTHON]"]);
const python = pythonArg || join(tmpdir(), "latchkey-django-venv", "bin", "python");
if (!existsSync(python)) {
  console.error(`no Python with pyotp at ${python}: run bash tests/django/setup.sh first`);
  process.exit(2);
}
const totpCode = join(dirname(fileURLToPath(import.meta.url)), "..", "django", "totp_code.py");

/** pyotp's code for the step `ahead` steps after the current one. */
function code(secret, ahead) {
  const at = String(Math.floor(Date.now() / 1000) + 30 * ahead);
  const out = execFileSync(python, [totpCode, "--base32", secret, "--at", at], { encoding: "utf8" });
  return JSON.parse(out)[0].code;
}

/** Waits, when the current step ends within 3 s, for the next one. */
async function awayFromBoundary() {
  const left = 30 - (Math.floor(Date.now() / 1000) % 30);
  if (left <= 3) await new Promise((r) => setTimeout(r, (left + 1) * 1000));
}

const server = await serve(binary, databaseUrl);
const base = server.base;
await server.ready();

await run(async (browser) => {
  const page = await browser.newPage();
  const status = page.locator("#status");
  const email = `mfa-${Date.now()}@example.com`;
  const password = "correct-horse-battery-9";

  await page.goto(base + "/demo/");
  await page.fill("#register-email", email);
  await page.fill("#register-password", password);
  await page.click("#register-form button");
  await status.filter({ hasText: "Registered as" }).waitFor();
  await page.locator("#mfa-status").filter({ hasText: "TOTP is off." }).waitFor();
  check(true, "a new user sees TOTP off");

  await page.fill("#totp-start-password", password);
  await page.click("#totp-start-form button");
  await status.filter({ hasText: "Scan the key" }).waitFor();
  const secret = (await page.locator("#totp-secret").textContent()).trim();
  check(/^[A-Z2-7]{32,}$/.test(secret), "setting up shows a base32 secret of 160 bits");
  check((await page.locator("#totp-url").getAttribute("href")).startsWith("otpauth://totp/"), "and its otpauth:// link");

  await awayFromBoundary();
  await page.fill("#totp-confirm-code", code(secret, 0));
  await page.click("#totp-confirm-form button");
  await status.filter({ hasText: "TOTP is on" }).waitFor();
  const recovery = (await page.locator("#recovery-codes").textContent()).split("\n");
  check(recovery.length === 10 && recovery.every((c) => /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/.test(c)),
    "a pyotp code turns TOTP on and the ten recovery codes are shown");
  await page.locator("#mfa-status").filter({ hasText: "10 unused recovery code(s)" }).waitFor();
  check(true, "the status shows TOTP on with ten unused codes");

  await page.reload();
  await status.filter({ hasText: "Welcome back" }).waitFor();
  check(await page.locator("#recovery-codes-card").isHidden(), "the recovery codes are not shown again");

  await page.click("#logout");
  await status.filter({ hasText: "Logged out" }).waitFor();
  await page.fill("#login-email", email);
  await page.fill("#login-password", password);
  await page.click("#login-form button");
  await status.filter({ hasText: "Enter your second factor" }).waitFor();
  check(await page.locator("#anonymous").isVisible() && await page.locator("#mfa-form").isVisible(),
    "the right password asks for the second factor, and signs nobody in yet");
  const cookies = await page.context().cookies();
  check(!cookies.some((c) => c.name === "access"), "no access cookie before the second factor");

  // the confirmation used the current step: the next one is due
  await page.fill("#mfa-code", code(secret, 1));
  await page.click("#mfa-form button");
  await status.filter({ hasText: "Logged in as" }).waitFor();
  check(await page.locator("#me-email").textContent() === email, "a TOTP code completes the login");

  await page.click("#logout");
  await status.filter({ hasText: "Logged out" }).waitFor();
  await page.fill("#login-email", email);
  await page.fill("#login-password", password);
  await page.click("#login-form button");
  await status.filter({ hasText: "Enter your second factor" }).waitFor();
  await page.fill("#mfa-code", recovery[0].toUpperCase());
  await page.click("#mfa-form button");
  await status.filter({ hasText: "Logged in as" }).waitFor();
  await page.locator("#mfa-status").filter({ hasText: "9 unused recovery code(s)" }).waitFor();
  check(true, "a recovery code completes the login once, and nine are left");
  await page.screenshot({ path: screenshot, fullPage: true });

  await page.fill("#totp-disable-password", password);
  await page.fill("#totp-disable-code", recovery[1]);
  await page.click("#totp-disable-form button");
  await page.locator("#mfa-status").filter({ hasText: "TOTP is off." }).waitFor();
  check(true, "the password and a recovery code turn TOTP off");

  await page.click("#logout");
  await status.filter({ hasText: "Logged out" }).waitFor();
  await page.fill("#login-email", email);
  await page.fill("#login-password", password);
  await page.click("#login-form button");
  await status.filter({ hasText: "Logged in as" }).waitFor();
  check(true, "without TOTP the password alone logs in again");
}, () => server.stop());

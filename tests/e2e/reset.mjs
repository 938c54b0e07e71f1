// End-to-end test of the password reset in a real browser, through real
// SMTP: "forgot password" on /demo/, the email read back from the SMTP
// server (tests/smtp/capture.py, aiosmtpd), its link opened in the browser,
// the new password set, a login with it.
//
// usage: node reset.mjs BINARY DATABASE_URL SCREENSHOT
// The SMTP server runs on the venv's python (LATCHKEY_SMTP_VENV, default
// /tmp/latchkey-smtp-venv, with aiosmtpd: .ci/run creates it).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { args, check, freePort, run, serve, sleep } from "./harness.mjs";

const [binary, databaseUrl, screenshot] = args("reset.mjs", ["BINARY", "DATABASE_URL", "SCREENSHOT"]);
const here = dirname(fileURLToPath(import.meta.url));
const venv = process.env.LATCHKEY_SMTP_VENV || "/tmp/latchkey-smtp-venv";
const python = join(venv, "bin", "python");
if (!existsSync(python)) {
  console.error(`no ${python}: create the venv (python3 -m venv ${venv} && ${venv}/bin/pip install aiosmtpd)`);
  process.exit(2);
}

function listening(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.on("connect", () => { socket.end(); resolve(true); });
    socket.on("error", () => resolve(false));
  });
}

/** The messages the SMTP server accepted, oldest first. */
function messages(folder) {
  return readdirSync(folder).filter((n) => n.endsWith(".json")).sort()
    .map((n) => JSON.parse(readFileSync(join(folder, n), "utf8")));
}

const mailbox = mkdtempSync(join(tmpdir(), "latchkey-e2e-mail-"));
const smtpPort = await freePort();
const smtp = spawn(python, [join(here, "..", "smtp", "capture.py"), String(smtpPort), mailbox], {
  stdio: ["ignore", "ignore", "inherit"],
});
const server = await serve(binary, databaseUrl, {
  SMTP_URL: `smtp+insecure://127.0.0.1:${smtpPort}`,
  EMAIL_FROM: "latchkey demo <no-reply@example.com>",
}, (base) => ({ PUBLIC_URL: base }));
const base = server.base;
for (let i = 0; i < 100 && !(await listening(smtpPort)); i++) await sleep(100);
await server.ready();

await run(async (browser) => {
  const context = await browser.newContext();
  const email = `reset-${Date.now()}@example.com`;
  const registered = await fetch(base + "/register/", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password: "correct-horse-battery-9" }),
  });
  check(registered.status === 201, "a user is registered");

  const page = await context.newPage();
  const status = page.locator("#status");
  await page.goto(base + "/demo/");
  check(await page.locator("#forgot-form").isVisible(), "the demo page has a forgot-password form");
  await page.fill("#forgot-email", email);
  await page.click("#forgot-form button");
  await status.filter({ hasText: "Password reset e-mail has been sent." }).waitFor();
  check(true, "asking for a reset answers at once");

  let inbox = [];
  for (let i = 0; i < 200 && inbox.length === 0; i++) { inbox = messages(mailbox); if (!inbox.length) await sleep(100); }
  check(inbox.length === 1, "one email reached the SMTP server");
  const message = inbox[0];
  check(message.to === email && message.from === "latchkey demo <no-reply@example.com>", "it is from EMAIL_FROM to the user");
  check(message.content_type === "multipart/alternative" && message.text && message.html, "it has a text and an HTML part");
  const link = message.text.match(/https?:\/\/\S+/)[0];
  check(link.startsWith(base + "/demo/#reset?uid="), "its link opens the demo page's reset form: " + link.replace(/token=.*/, "token=…"));
  check(message.html.includes(link.replace(/&/g, "&amp;")), "the HTML part has the same link");

  // The email client opens the link in a new tab.
  const tab = await context.newPage();
  const tabStatus = tab.locator("#status");
  await tab.goto(link);
  await tab.locator("#reset-form").waitFor();
  check(await tab.locator("#reset-form").isVisible(), "the link shows the new-password form");
  check(await tab.evaluate(() => location.hash) === "", "the token leaves the address bar once read");
  await tab.fill("#reset-password1", "short");
  await tab.fill("#reset-password2", "short");
  await tab.click("#reset-form button");
  await tabStatus.filter({ hasText: "new_password2" }).waitFor();
  check(true, "a refused password is explained (and does not use the link up)");
  await tab.fill("#reset-password1", "a-reset-passphrase-77");
  await tab.fill("#reset-password2", "a-reset-passphrase-77");
  await tab.click("#reset-form button");
  await tabStatus.filter({ hasText: "Password has been reset with the new password." }).waitFor();
  check(await tab.locator("#login-form").isVisible(), "after the reset the login form is back");
  await tab.screenshot({ path: screenshot, fullPage: true });

  const old = await fetch(base + "/auth/", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password: "correct-horse-battery-9" }),
  });
  check(old.status === 401, "the old password no longer works");

  await tab.fill("#login-email", email);
  await tab.fill("#login-password", "a-reset-passphrase-77");
  await tab.click("#login-form button");
  await tabStatus.filter({ hasText: "Logged in as" }).waitFor();
  check(await tab.locator("#me-email").textContent() === email, "logging in with the new password works");

  const reused = await tab.evaluate(async (href) => {
    const params = new URLSearchParams(href.slice(href.indexOf("?") + 1));
    const r = await fetch("/auth/password/reset/confirm/", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ uid: params.get("uid"), token: params.get("token"),
        new_password1: "another-passphrase-88", new_password2: "another-passphrase-88" }),
    });
    return r.status;
  }, link);
  check(reused === 400, "the link works once");
}, () => { server.stop(); smtp.kill("SIGTERM"); });

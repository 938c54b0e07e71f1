// End-to-end test of the /demo/ page in a real browser: register, reload
// (the session survives through the cookies), list users, change password,
// log out, log in again — the cookie + X-CSRFToken flow a single-page app uses.
//
// usage: node demo.mjs BINARY DATABASE_URL SCREENSHOT
import { args, check, run, serve } from "./harness.mjs";

const [binary, databaseUrl, screenshot] = args("demo.mjs", ["BINARY", "DATABASE_URL", "SCREENSHOT"]);
const server = await serve(binary, databaseUrl);
const base = server.base;
await server.ready();

await run(async (browser) => {
  const page = await browser.newPage();
  const status = page.locator("#status");
  const email = `demo-${Date.now()}@example.com`;

  await page.goto(base + "/demo/");
  check(await page.locator("#anonymous").isVisible(), "a new visitor sees the register and login forms");

  await page.fill("#register-email", email);
  await page.fill("#register-password", "correct-horse-battery-9");
  await page.click("#register-form button");
  await status.filter({ hasText: "Registered as" }).waitFor();
  check(await page.locator("#me-email").textContent() === email, "registering signs the user in");

  const cookies = await page.context().cookies();
  const access = cookies.find((c) => c.name === "access");
  check(access && access.httpOnly, "the access cookie is HttpOnly");
  check(cookies.some((c) => c.name === "csrftoken" && !c.httpOnly), "the csrftoken cookie is readable");

  await page.reload();
  await status.filter({ hasText: "Welcome back" }).waitFor();
  check(await page.locator("#signed-in").isVisible(), "the session survives a reload through the cookies");

  await page.click("#list-users");
  await status.filter({ hasText: "user(s)" }).waitFor();
  check(await page.locator("#users tbody tr").count() >= 1, "the user list loads by cookie");

  // A second device logs in: the page lists both sessions and ends the other one.
  const other = await fetch(base + "/auth/", {
    method: "POST",
    headers: { "Content-Type": "application/json", "User-Agent": "second-device/1.0" },
    body: JSON.stringify({ email, password: "correct-horse-battery-9" }),
  });
  check(other.status === 200, "a second device logs in");
  const otherAccess = (await other.json()).token.access;
  await page.click("#list-sessions");
  await status.filter({ hasText: "2 session(s)" }).waitFor();
  check(await page.locator("#sessions tbody tr").count() === 2, "the page lists both sessions");
  check(await page.locator("#sessions tbody").textContent().then((t) => t.includes("this session")), "the page marks its own session");
  await page.click("#sessions .end-session");
  await status.filter({ hasText: "Session ended" }).waitFor();
  check(await page.locator("#sessions tbody tr").count() === 1, "ending the other session leaves one");
  const refused = await fetch(base + "/auth/", { headers: { Authorization: "Bearer " + otherAccess } });
  check(refused.status === 401, "the ended session's access token is refused at once");

  await page.fill("#old-password", "correct-horse-battery-9");
  await page.fill("#new-password", "a-new-passphrase-42");
  await page.click("#password-form button");
  await status.filter({ hasText: "Password changed" }).waitFor();
  check(true, "the password changes with the X-CSRFToken header");

  await page.reload();
  await status.filter({ hasText: "Welcome back" }).waitFor();
  check(await page.locator("#signed-in").isVisible(), "the new cookies from the password change keep the session");
  await page.screenshot({ path: screenshot, fullPage: true });

  await page.click("#logout");
  await status.filter({ hasText: "Logged out" }).waitFor();
  await page.reload();
  await page.waitForLoadState("networkidle");
  check(await page.locator("#anonymous").isVisible(), "after logout a reload shows the visitor forms");

  await page.fill("#login-email", email);
  await page.fill("#login-password", "a-new-passphrase-42");
  await page.click("#login-form button");
  await status.filter({ hasText: "Logged in as" }).waitFor();
  check(await page.locator("#me-email").textContent() === email, "logging in with the new password works");
}, () => server.stop());

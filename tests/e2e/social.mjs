// End-to-end test of the /demo/ page's sign-in with a provider in a real
// browser, against the real OpenID Provider and the GitHub imitation of
// tests/oidc/ (see its README): "Sign in with Acme" through the OP's login
// and consent pages and back signed in; link GitHub, sign in with it,
// unlink it, and the last provider refused to unlink; a cancel at the
// provider, an identity already taken and an address that has an account
// shown as #social_error; a TOTP user linked to the OP asked for the second
// factor after the provider; and Apple's way, the OP answering with response_mode=form_post, its page
// posting the callback across sites.
//
// The browser talks to latchkey as http://localhost:PORT and to the
// providers as http://127.0.0.1:PORT: two sites, as in production, so the
// cookies behave as they do there (COOKIE_SECURE=true; Chromium takes Secure
// cookies on localhost): the flow's cookie must come along on the OP's
// cross-site POST (SameSite=None) and on the redirects back (Lax).
// TOTP codes come from pyotp (tests/django/totp_code.py in the tests'
// Django venv), never from latchkey.
//
// usage: node social.mjs BINARY DATABASE_URL SCREENSHOT [PYTHON]
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { args, check, freePort, run, serve } from "./harness.mjs";

const [binary, databaseUrl, screenshot, pythonArg] =
  args("social.mjs", ["BINARY", "DATABASE_URL", "SCREENSHOT", "[PYTHON]"]);
const python = pythonArg || join(tmpdir(), "latchkey-django-venv", "bin", "python");
if (!existsSync(python)) {
  console.error(`no Python with pyotp at ${python}: run bash tests/django/setup.sh first`);
  process.exit(2);
}
const tests = join(dirname(fileURLToPath(import.meta.url)), "..");
const oidc = join(tests, "oidc");
if (!existsSync(join(oidc, "node_modules", "oidc-provider"))) {
  console.error(`the test providers' packages are missing: run npm ci in ${oidc}`);
  process.exit(2);
}

/** pyotp's code for the step `ahead` steps after the current one. */
function totp(secret, ahead) {
  const at = String(Math.floor(Date.now() / 1000) + 30 * ahead);
  const out = execFileSync(python, [join(tests, "django", "totp_code.py"), "--base32", secret, "--at", at],
    { encoding: "utf8" });
  return JSON.parse(out)[0].code;
}

/** Waits, when the current step ends within 3 s, for the next one. */
async function awayFromBoundary() {
  const left = 30 - (Math.floor(Date.now() / 1000) % 30);
  if (left <= 3) await new Promise((r) => setTimeout(r, (left + 1) * 1000));
}

/** tests/oidc/`script` with `config`, once it printed where it listens
 * (`{origin, issuer, port, control_port}`); its stderr is kept for a
 * failure's report. */
async function startProvider(script, config) {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-e2e-oidc-"));
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [join(oidc, script), file], { cwd: oidc, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (chunk) => { log += chunk; });
  const line = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${script} did not start in 90 s:\n${log}`)), 90_000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (out.includes("\n")) { clearTimeout(timer); resolve(out.split("\n")[0]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`${script} exited (${code}):\n${log}`)); });
  });
  return { ...JSON.parse(line), log: () => log, stop() { child.kill("SIGTERM"); } };
}

const stamp = Date.now();
const alice = `alice-${stamp}@example.com`;     // signs up through the OP
const carol = `carol-${stamp}@example.com`;     // signs up through "Apple"
const totpUser = `totp-${stamp}@example.com`;   // a password user with TOTP, links the OP
const dave = `dave-${stamp}@example.com`;       // a password user, tries to take alice's identity
const password = "correct-horse-battery-9";
const apple = { team_id: "TEAM123456", key_id: "KEY1234567" };

// latchkey's port first: the providers register its callbacks.
const port = await freePort();
const site = `http://localhost:${port}`;
const callback = (name) => `${site}/auth/social/${name}/callback/`;

const op = await startProvider("provider.mjs", {
  clients: [
    { client_id: "latchkey-web", client_secret: "acme-secret", redirect_uris: [callback("acme")],
      token_endpoint_auth_method: "client_secret_basic" },
    // Apple's way: form_post only, the client secret an ES256 JWT
    { client_id: "com.example.web", redirect_uris: [callback("apple")], token_endpoint_auth_method: "client_secret_post",
      response_modes: ["form_post"],
      apple_client_secret: { ...apple, public_key: readFileSync(join(oidc, "keys", "apple-es256.pub.pem"), "utf8") } },
  ],
  accounts: [
    { sub: "alice", email: alice, email_verified: true },
    { sub: "totp", email: totpUser, email_verified: true },
    { sub: "carol", email: carol, email_verified: "true" },  // as Apple sends it: a string
    { sub: "eve", email: dave, email_verified: false },      // dave's address, not vouched for
  ],
});
const github = await startProvider("github.mjs", {
  apps: [{ client_id: "latchkey-app", client_secret: "github-secret", redirect_uris: [callback("github")] }],
  users: [{ login: "octocat", id: 583231, name: "The Octocat", email: null,
    emails: [{ email: `octocat-${stamp}@example.com`, primary: true, verified: true }] }],
});

const server = await serve(binary, databaseUrl, {
  PUBLIC_URL: site,
  COOKIE_SECURE: "true",
  SOCIAL_PROVIDERS: "acme,github,apple",
  SOCIAL_ACME_ISSUER: op.issuer,
  SOCIAL_ACME_CLIENT_ID: "latchkey-web",
  SOCIAL_ACME_CLIENT_SECRET: "acme-secret",
  SOCIAL_GITHUB_URL: github.origin,
  SOCIAL_GITHUB_API_URL: github.origin,
  SOCIAL_GITHUB_CLIENT_ID: "latchkey-app",
  SOCIAL_GITHUB_CLIENT_SECRET: "github-secret",
  SOCIAL_APPLE_ISSUER: op.issuer,
  SOCIAL_APPLE_CLIENT_ID: "com.example.web",
  SOCIAL_APPLE_TEAM_ID: apple.team_id,
  SOCIAL_APPLE_KEY_ID: apple.key_id,
  SOCIAL_APPLE_PRIVATE_KEY: readFileSync(join(oidc, "keys", "apple-es256.pem"), "utf8"),
}, () => ({}), port);
await server.ready();

const providerPage = (url) => url.pathname.startsWith("/interaction/") || url.pathname === "/login/oauth/authorize";

/** Clicks `selector` on the demo, which leaves for a provider (none: the
 * browser is there already), and goes through the provider's pages as
 * `login` (the OP's login and consent, or GitHub's authorize page; `cancel`
 * presses Cancel instead) until the browser is back on latchkey's site.
 * Pages the provider skips (a session and a grant it has already) are
 * skipped here too. */
async function throughProvider(page, selector, login, { cancel = false } = {}) {
  if (selector) await Promise.all([page.waitForNavigation(), page.click(selector)]);
  for (let step = 0; step < 8; step++) {
    const url = new URL(page.url());
    if (url.origin === site) return;
    if (providerPage(url)) {
      if (cancel) {
        await Promise.all([page.waitForNavigation(), page.click("#cancel")]);
        continue;
      }
      if (await page.locator("#login").count()) await page.fill("#login", login);
      await Promise.all([page.waitForNavigation(), page.click("#submit")]);
    } else {
      // oidc-provider's form_post page, which posts itself to the callback
      await page.waitForURL((u) => u.origin === site);
    }
  }
  throw new Error("stuck at the provider: " + page.url());
}

/** Every URL the browser asked for, on any site. */
function recordUrls(page) {
  const urls = [];
  page.on("request", (request) => urls.push({ method: request.method(), url: request.url() }));
  return urls;
}

function noTokenIn(urls) {
  return urls.every(({ url }) => !/eyJ[A-Za-z0-9_-]{10,}|[?&](access|refresh|token)=/.test(url));
}

/** latchkey's cookies other than the session's, whatever their path: the
 * flow's. */
async function flowCookiesOf(context) {
  return (await context.cookies()).filter((c) => c.domain === "localhost"
    && !["access", "refresh", "csrftoken"].includes(c.name));
}

const identityRows = (page) => page.locator("#identities tbody tr");

async function logOut(page) {
  await page.click("#logout");
  await page.locator("#status").filter({ hasText: "Logged out" }).waitFor();
}

async function register(page, email) {
  await page.goto(site + "/demo/");
  await page.fill("#register-email", email);
  await page.fill("#register-password", password);
  await page.click("#register-form button");
  await page.locator("#status").filter({ hasText: "Registered as" }).waitFor();
}

await run(async (browser) => {
  try {
    await signInLinkUnlink(browser);
    await accountExists(browser);
    await secondFactor(browser);
    await formPost(browser);
  } catch (error) {
    console.error(`--- the OP's log ---\n${op.log().slice(-6000)}\n--- GitHub's log ---\n${github.log().slice(-3000)}`);
    throw error;
  }
}, () => { server.stop(); op.stop(); github.stop(); });

/** Sign in with a generic OpenID Connect provider, link GitHub, sign in
 * with it, unlink; a cancel and a taken identity as #social_error. */
async function signInLinkUnlink(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const status = page.locator("#status");
  const urls = recordUrls(page);

  await page.goto(site + "/demo/");
  await page.locator("#social-buttons button").first().waitFor();
  const labels = await page.locator("#social-buttons button").allTextContents();
  check(JSON.stringify(labels) === JSON.stringify(["Sign in with Acme", "Sign in with GitHub", "Sign in with Apple"]),
    "the demo shows a Sign in with … button per provider of GET /auth/social/providers/");

  await Promise.all([page.waitForNavigation(), page.click('#social-buttons button[data-provider="acme"]')]);
  check(new URL(page.url()).origin === op.origin, "Sign in with Acme leaves for the OP");
  const flowCookies = await flowCookiesOf(context);
  check(flowCookies.length > 0 && flowCookies.every((c) => c.httpOnly && c.sameSite === "Lax"),
    "the flow is bound to an HttpOnly, SameSite=Lax cookie");
  await throughProvider(page, null, "alice");
  await status.filter({ hasText: "Logged in as " + alice }).waitFor();
  check(await page.locator("#me-email").textContent() === alice,
    "Sign in with Acme: the OP's login and consent pages, then back signed in as a new user");
  check(new URL(page.url()).hash === "" && page.url() === site + "/demo/",
    "the #social_code is gone from the address bar");
  const flowRequests = urls.filter(({ url }) => url.includes("/auth/social/acme/"));
  check(flowRequests.some(({ url }) => url.includes("/acme/authorize/")
      && new URL(url).searchParams.get("next") === site + "/demo/")
    && flowRequests.some(({ method, url }) => method === "GET" && url.startsWith(callback("acme") + "?")),
  "the button went through authorize/?next=<the demo> and the OP came back to the callback with a GET");
  const cookies = await context.cookies(site);
  check(cookies.some((c) => c.name === "access" && c.httpOnly && c.secure), "the exchange set the Secure access cookie");

  await identityRows(page).first().waitFor();
  check(await identityRows(page).count() === 1
    && (await identityRows(page).first().textContent()).includes(alice),
  "Linked providers lists Acme with the address it gave");
  check(await page.locator('#link-buttons button[data-provider="github"]').isVisible(),
    "and offers to link the providers not linked yet");

  await throughProvider(page, '#link-buttons button[data-provider="github"]', "octocat");
  await status.filter({ hasText: "GitHub is linked" }).waitFor();
  await page.locator('#identities tbody tr[data-provider="github"]').waitFor();
  check(await identityRows(page).count() === 2, "Link GitHub: GitHub's authorize page, then back with #social_linked");

  await logOut(page);
  await throughProvider(page, '#social-buttons button[data-provider="github"]', "octocat");
  await status.filter({ hasText: "Logged in as " + alice }).waitFor();
  check(true, "Sign in with GitHub signs in the user it is linked to, whatever GitHub's address");
  await page.locator('#identities tbody tr[data-provider="github"]').waitFor();
  await page.screenshot({ path: screenshot, fullPage: true });

  await page.click('#identities tbody tr[data-provider="github"] .unlink');
  await status.filter({ hasText: "Unlinked GitHub." }).waitFor();
  check(await identityRows(page).count() === 1, "Unlink removes GitHub");
  await page.click('#identities tbody tr[data-provider="acme"] .unlink');
  await status.filter({ hasText: "Cannot unlink Acme" }).waitFor();
  check(await identityRows(page).count() === 1 && await status.getAttribute("class") === "error",
    "the last way in of a user without a password is refused (last_login_method)");

  await logOut(page);
  await throughProvider(page, '#social-buttons button[data-provider="github"]', "octocat", { cancel: true });
  await status.filter({ hasText: "You cancelled at the provider" }).waitFor();
  check(await page.locator("#anonymous").isVisible() && new URL(page.url()).hash === "",
    "a cancel at the provider comes back as #social_error=access_denied, shown, nobody signed in");

  await register(page, dave);
  await throughProvider(page, '#link-buttons button[data-provider="acme"]', "alice");
  await status.filter({ hasText: "already linked to another user" }).waitFor();
  check(await page.locator("#me-email").textContent() === dave && await identityRows(page).count() === 0,
    "linking an identity another user holds: #social_error=identity_taken, nothing linked");
  check(noTokenIn(urls), "no token ever appeared in a URL");
  await context.close();
}

/** A provider that does not vouch for an address that has an account:
 * #social_error=account_exists, nobody signed in. */
async function accountExists(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(site + "/demo/");
  await page.locator('#social-buttons button[data-provider="acme"]').waitFor();
  await throughProvider(page, '#social-buttons button[data-provider="acme"]', "eve");
  await page.locator("#status").filter({ hasText: "An account with this email already exists" }).waitFor();
  check(await page.locator("#anonymous").isVisible()
    && !(await context.cookies(site)).some((c) => c.name === "access"),
  "an unverified address that has an account: #social_error=account_exists, nobody signed in");
  await context.close();
}

/** A user with TOTP: the provider, then the second factor. */
async function secondFactor(browser) {
  const mfaContext = await browser.newContext();
  const mfaPage = await mfaContext.newPage();
  const mfaStatus = mfaPage.locator("#status");
  await register(mfaPage, totpUser);
  await mfaPage.fill("#totp-start-password", password);
  await mfaPage.click("#totp-start-form button");
  await mfaStatus.filter({ hasText: "Scan the key" }).waitFor();
  const secret = (await mfaPage.locator("#totp-secret").textContent()).trim();
  await awayFromBoundary();
  await mfaPage.fill("#totp-confirm-code", totp(secret, 0));
  await mfaPage.click("#totp-confirm-form button");
  await mfaStatus.filter({ hasText: "TOTP is on" }).waitFor();
  await throughProvider(mfaPage, '#link-buttons button[data-provider="acme"]', "totp");
  await mfaStatus.filter({ hasText: "Acme is linked" }).waitFor();
  check(await identityRows(mfaPage).count() === 1, "a TOTP user (at aal 2 after enrolling) links Acme");

  await logOut(mfaPage);
  await throughProvider(mfaPage, '#social-buttons button[data-provider="acme"]', "totp");
  await mfaStatus.filter({ hasText: "Enter your second factor" }).waitFor();
  check(await mfaPage.locator("#mfa-form").isVisible()
    && !(await mfaContext.cookies(site)).some((c) => c.name === "access"),
  "Sign in with Acme for a TOTP user answers mfa_required: the code is asked, nobody signed in yet");
  // the confirmation used the current step: the next one is due
  await mfaPage.fill("#mfa-code", totp(secret, 1));
  await mfaPage.click("#mfa-form button");
  await mfaStatus.filter({ hasText: "Logged in as " + totpUser }).waitFor();
  check(true, "the TOTP code completes the provider's login");
  await mfaContext.close();
}

/** Apple's way: form_post, the callback posted from the OP's site. */
async function formPost(browser) {
  const appleContext = await browser.newContext();
  const applePage = await appleContext.newPage();
  const appleUrls = recordUrls(applePage);
  await applePage.goto(site + "/demo/");
  await applePage.locator('#social-buttons button[data-provider="apple"]').waitFor();
  await Promise.all([applePage.waitForNavigation(), applePage.click('#social-buttons button[data-provider="apple"]')]);
  const flowCookies = await flowCookiesOf(appleContext);
  check(flowCookies.length > 0 && flowCookies.every((c) => c.httpOnly && c.secure && c.sameSite === "None"),
    "the form_post flow is bound to an HttpOnly cookie that is SameSite=None; Secure");
  await throughProvider(applePage, null, "carol");
  await applePage.locator("#status").filter({ hasText: "Logged in as " + carol }).waitFor();
  check(appleUrls.some(({ method, url }) => method === "POST" && url === callback("apple")),
    "the OP's form_post page posted the callback across sites, and the user is signed in");
  check(!appleUrls.some(({ method, url }) => method === "GET" && url.startsWith(callback("apple"))),
    "with no code or state in the callback's URL");
  check(noTokenIn(appleUrls), "no token in any URL of the form_post flow");
  await appleContext.close();
}

// A GitHub imitation for latchkey's social-login tests, on Node's http: the
// OAuth web flow (github.com's /login/oauth/authorize and
// /login/oauth/access_token, S256 PKCE checked) and the REST API routes
// latchkey calls (api.github.com's /user, /user/emails and the token check
// POST /applications/{client_id}/token), answered in GitHub's shapes, all
// on one origin. Configured from a JSON file; README.md describes it.
//
//   node github.mjs CONFIG.json
//
// prints one line on stdout when listening:
//   {"name":"github","origin":...,"port":...,"control_port":...}

import * as crypto from 'node:crypto';

import {
  basicCredentials, escapeHtml, readBody, readConfig, sendHtml, sendJson, serve,
} from './harness.mjs';

const config = readConfig();
const DOCS = 'https://docs.github.com/rest';
const CODE_LIFETIME_MS = 10 * 60 * 1000;

const apps = new Map((config.apps || []).map((app) => [String(app.client_id), app]));
let users = [];
function setUsers(list) {
  users = (list || []).map((user) => ({ ...user, id: Number(user.id) }));
}
setUsers(config.users);
// A user by login or by numeric id (as a string).
const findUser = (name) => users.find((u) => u.login === name || String(u.id) === String(name));

const codes = new Map(); // code -> {clientId, redirectUri, userId, scopes, challenge, expires}
const tokens = new Map(); // access token -> {id, clientId, userId, scopes, created}
let tokenIds = 0;

function randomToken(prefix) {
  // GitHub's tokens: a prefix and 36 characters of [A-Za-z0-9].
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.randomBytes(36);
  return prefix + Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

function issueToken(clientId, userId, scopes) {
  const token = randomToken('gho_');
  tokenIds += 1;
  tokens.set(token, {
    id: tokenIds, clientId, userId, scopes, created: new Date().toISOString(),
  });
  return token;
}

// GitHub's scopes as it writes them back: comma-separated.
const scopeList = (scope) => String(scope || '').split(/[\s,]+/).filter(Boolean);

// --- the web flow -----------------------------------------------------------

// A callback URL matches when it equals a registered one or lies below it
// (GitHub's rule: same host and port, a subdirectory of the path).
function redirectAllowed(app, uri) {
  const registered = app.redirect_uris || [];
  return registered.some((r) => uri === r || uri.startsWith(r.endsWith('/') ? r : `${r}/`));
}

function redirect(res, target, params) {
  const url = new URL(target);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(name, value);
  }
  res.writeHead(302, { location: url.toString(), 'content-length': 0 });
  res.end();
}

function loginPage(params, problem) {
  const hidden = Object.entries(params)
    .filter(([name]) => !['login', 'deny'].includes(name))
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('\n    ');
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Test GitHub: sign in</title></head>
<body data-prompt="login">
  <h1>Test GitHub: authorize ${escapeHtml(params.client_id)}</h1>
  ${problem ? `<p id="problem">${escapeHtml(problem)}</p>` : ''}
  <form id="interaction" method="post" action="/login/oauth/authorize">
    ${hidden}
    <label for="login">Login or id</label>
    <input id="login" name="login" autofocus autocomplete="off">
    <button id="submit" type="submit">Authorize</button>
    <button id="cancel" type="submit" name="deny" value="1">Cancel</button>
  </form>
</body></html>`;
}

function authorize(req, res, params) {
  const app = apps.get(String(params.client_id));
  if (!app) return sendHtml(res, 404, '<h1>Not Found</h1><p>unknown client_id</p>');
  const registered = (app.redirect_uris || [])[0];
  const redirectUri = params.redirect_uri || registered;
  if (!redirectUri) return sendHtml(res, 400, '<h1>no redirect_uri and none registered</h1>');
  if (params.redirect_uri && !redirectAllowed(app, params.redirect_uri)) {
    if (!registered) return sendHtml(res, 400, '<h1>redirect_uri mismatch</h1>');
    return redirect(res, registered, {
      error: 'redirect_uri_mismatch',
      error_description: 'The redirect_uri MUST match the registered callback URL for this application.',
      error_uri: 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch',
      state: params.state,
    });
  }
  if (params.code_challenge && (params.code_challenge_method || 'plain') !== 'S256') {
    return sendHtml(res, 400, '<h1>code_challenge_method must be S256</h1>');
  }
  if (config.pkce_required && !params.code_challenge) {
    return sendHtml(res, 400, '<h1>code_challenge required</h1>');
  }
  if (req.method === 'GET') return sendHtml(res, 200, loginPage(params));

  if (params.deny) {
    return redirect(res, redirectUri, {
      error: 'access_denied',
      error_description: 'The user has denied your application access.',
      error_uri: 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied',
      state: params.state,
    });
  }
  const user = findUser(params.login);
  if (!user) return sendHtml(res, 400, loginPage(params, `no user ${params.login}`));
  const code = crypto.randomBytes(10).toString('hex');
  codes.set(code, {
    clientId: app.client_id,
    redirectUri: params.redirect_uri,
    userId: user.id,
    scopes: scopeList(params.scope),
    challenge: params.code_challenge,
    expires: Date.now() + CODE_LIFETIME_MS,
  });
  return redirect(res, redirectUri, { code, state: params.state });
}

// The token endpoint answers in the format the Accept header names (JSON,
// XML, else a form), refusals included, always with 200.
function tokenAnswer(req, res, fields) {
  const accept = String(req.headers.accept || '');
  if (accept.includes('application/json')) return sendJson(res, 200, fields);
  let body;
  let type;
  if (accept.includes('application/xml')) {
    type = 'application/xml; charset=utf-8';
    body = `<OAuth>${Object.entries(fields).map(([k, v]) => `<${k}>${escapeHtml(v)}</${k}>`).join('')}</OAuth>`;
  } else {
    type = 'application/x-www-form-urlencoded; charset=utf-8';
    body = new URLSearchParams(fields).toString();
  }
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  return res.end(body);
}

const TOKEN_ERRORS = {
  incorrect_client_credentials: 'The client_id and/or client_secret passed are incorrect.',
  redirect_uri_mismatch: 'The redirect_uri MUST match the registered callback URL for this application.',
  bad_verification_code: 'The code passed is incorrect or expired.',
  unsupported_grant_type: 'The grant type is not supported.',
};

function tokenError(req, res, entry, error, description) {
  entry.refusal = error;
  return tokenAnswer(req, res, {
    error,
    error_description: description || TOKEN_ERRORS[error],
    error_uri: `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${error.replace(/_/g, '-')}`,
  });
}

function accessToken(req, res, entry, params) {
  const basic = basicCredentials(req);
  const clientId = basic ? basic[0] : params.client_id;
  const secret = basic ? basic[1] : params.client_secret;
  entry.client_authentication = basic ? 'client_secret_basic' : 'client_secret_post';
  const app = apps.get(String(clientId));
  if (!app || secret !== app.client_secret) return tokenError(req, res, entry, 'incorrect_client_credentials');
  if (params.grant_type && params.grant_type !== 'authorization_code') {
    return tokenError(req, res, entry, 'unsupported_grant_type');
  }
  const grant = codes.get(String(params.code));
  if (!grant || grant.clientId !== app.client_id || grant.expires < Date.now()) {
    return tokenError(req, res, entry, 'bad_verification_code');
  }
  if (params.redirect_uri && grant.redirectUri && params.redirect_uri !== grant.redirectUri) {
    return tokenError(req, res, entry, 'redirect_uri_mismatch');
  }
  if (grant.challenge) {
    const verifier = String(params.code_verifier || '');
    const computed = crypto.createHash('sha256').update(verifier).digest('base64url');
    if (!verifier || computed !== grant.challenge) {
      return tokenError(req, res, entry, 'bad_verification_code', 'The code_verifier does not match the code_challenge.');
    }
  }
  codes.delete(String(params.code)); // used once
  const token = issueToken(app.client_id, grant.userId, grant.scopes);
  return tokenAnswer(req, res, { access_token: token, token_type: 'bearer', scope: grant.scopes.join(',') });
}

// --- the REST API -------------------------------------------------------------

function apiError(res, status, message) {
  return sendJson(res, status, { message, documentation_url: DOCS, status: String(status) });
}

function userJson(user) {
  return {
    login: user.login,
    id: user.id,
    node_id: Buffer.from(`04:User${user.id}`).toString('base64'),
    avatar_url: `https://avatars.githubusercontent.com/u/${user.id}?v=4`,
    html_url: `https://github.com/${user.login}`,
    type: 'User',
    site_admin: false,
    name: user.name ?? null,
    email: user.email ?? null,
  };
}

function bearer(req) {
  const [scheme, value] = String(req.headers.authorization || '').split(' ');
  if (!value || !['bearer', 'token'].includes(scheme.toLowerCase())) return undefined;
  return tokens.get(value);
}

function api(req, res, url, entry) {
  // GitHub refuses API requests without a User-Agent.
  if (config.require_user_agent !== false && !req.headers['user-agent']) {
    entry.refusal = 'no User-Agent';
    return apiError(res, 403, 'Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.');
  }
  const grant = bearer(req);
  if (!grant) return apiError(res, 401, 'Bad credentials');
  const user = users.find((u) => u.id === grant.userId);
  if (!user) return apiError(res, 401, 'Bad credentials');
  const headers = { 'x-oauth-scopes': grant.scopes.join(', ') };
  if (url.pathname === '/user') {
    return sendJson(res, 200, userJson(user), { ...headers, 'x-accepted-oauth-scopes': '' });
  }
  // /user/emails needs the user:email (or user) scope.
  if (!grant.scopes.includes('user:email') && !grant.scopes.includes('user')) {
    return apiError(res, 404, 'Not Found');
  }
  const emails = (user.emails || []).map((e) => ({
    email: e.email, primary: Boolean(e.primary), verified: Boolean(e.verified), visibility: e.visibility ?? null,
  }));
  return sendJson(res, 200, emails, { ...headers, 'x-accepted-oauth-scopes': 'user, user:email' });
}

// POST (check) and DELETE (revoke) /applications/{client_id}/token: HTTP
// Basic with the app's client id and secret; a token another app obtained
// is 404, as any unknown token.
function applicationToken(req, res, url, body, entry) {
  const clientId = decodeURIComponent(url.pathname.split('/')[2]);
  const basic = basicCredentials(req);
  if (!basic) return apiError(res, 401, 'Requires authentication');
  const app = apps.get(basic[0]);
  if (!app || basic[1] !== app.client_secret || basic[0] !== clientId) {
    entry.refusal = 'client credentials';
    return apiError(res, 404, 'Not Found');
  }
  const token = body && typeof body === 'object' ? body.access_token : undefined;
  if (!token) {
    return sendJson(res, 422, {
      message: 'Invalid request.\n\n"access_token" wasn\'t supplied.', documentation_url: DOCS, status: '422',
    });
  }
  const grant = tokens.get(String(token));
  if (!grant || grant.clientId !== app.client_id) {
    entry.refusal = grant ? 'token of another app' : 'unknown token';
    return apiError(res, 404, 'Not Found');
  }
  if (req.method === 'DELETE') {
    tokens.delete(String(token));
    res.writeHead(204);
    return res.end();
  }
  const user = users.find((u) => u.id === grant.userId);
  return sendJson(res, 200, {
    id: grant.id,
    url: `${url.origin}/authorizations/${grant.id}`,
    app: { name: app.name || app.client_id, url: 'https://example.com', client_id: app.client_id },
    token,
    hashed_token: crypto.createHash('sha256').update(token).digest('hex'),
    token_last_eight: token.slice(-8),
    note: null,
    note_url: null,
    created_at: grant.created,
    updated_at: grant.created,
    scopes: grant.scopes,
    fingerprint: null,
    expires_at: null,
    user: user ? userJson(user) : null,
  });
}

// --- the main server's requests ----------------------------------------------

async function handle(req, res, entry) {
  const url = new URL(req.url, 'http://placeholder');
  const query = Object.fromEntries(url.searchParams);
  let body;
  if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH' || req.method === 'DELETE') {
    ({ body } = await readBody(req));
    entry.body = body;
  }
  const form = body && typeof body === 'object' ? body : {};

  if (url.pathname === '/login/oauth/authorize' && (req.method === 'GET' || req.method === 'POST')) {
    return authorize(req, res, { ...query, ...form });
  }
  if (url.pathname === '/login/oauth/access_token' && req.method === 'POST') {
    return accessToken(req, res, entry, { ...query, ...form });
  }
  if ((url.pathname === '/user' || url.pathname === '/user/emails') && req.method === 'GET') {
    return api(req, res, url, entry);
  }
  if (/^\/applications\/[^/]+\/token$/.test(url.pathname) && ['POST', 'DELETE'].includes(req.method)) {
    return applicationToken(req, res, new URL(req.url, `http://${req.headers.host}`), body, entry);
  }
  return apiError(res, 404, 'Not Found');
}

async function control(req, res, url, body) {
  if (req.method === 'POST' && url.pathname === '/__control/token') {
    // A token as if the app had obtained it from the user.
    const app = apps.get(String(body.client_id));
    const user = findUser(body.login);
    if (!app || !user) throw new Error('unknown client_id or login');
    const scopes = body.scopes || ['read:user', 'user:email'];
    sendJson(res, 200, { access_token: issueToken(app.client_id, user.id, scopes) });
    return true;
  }
  if (req.method === 'PUT' && url.pathname === '/__control/users') {
    setUsers(body && body.users);
    sendJson(res, 200, { users: users.map((u) => u.login) });
    return true;
  }
  return false;
}

await serve(config, {
  name: 'github', handle, control, ready: async () => {},
});

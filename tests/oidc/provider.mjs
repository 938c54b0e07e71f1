// A real OpenID Provider for latchkey's social-login tests: oidc-provider
// (panva's certified implementation) configured from a JSON file, with
// login and consent pages a test can drive over plain HTTP, Apple's
// client-secret JWTs checked with jose, and a control server (keys, modes,
// signing arbitrary claims, the request log). README.md describes the config
// and every route.
//
//   node provider.mjs CONFIG.json
//
// prints one line on stdout when listening:
//   {"name":"provider","origin":...,"issuer":...,"port":...,"control_port":...}

import * as crypto from 'node:crypto';

import * as jose from 'jose';
import Provider from 'oidc-provider';

import {
  basicCredentials, escapeHtml, readBody, readConfig, sendHtml, sendJson, serve,
} from './harness.mjs';

const config = readConfig();

// Apple's client secret is a JWT whose audience is this, whatever the issuer.
const APPLE_AUDIENCE = 'https://appleid.apple.com';
// Apple refuses client secrets that live longer than six months.
const APPLE_MAX_LIFETIME = 15777000;

// --- accounts ---------------------------------------------------------------

let accounts = new Map();
function setAccounts(list) {
  accounts = new Map((list || []).map((account) => [String(account.sub), account]));
}
setAccounts(config.accounts);

// The claims of an account as oidc-provider asks for them (`use` is
// `id_token` or `userinfo`; it keeps those the granted scopes allow).
function claimsOf(account, use) {
  const claims = { sub: String(account.sub) };
  if (account.email !== undefined && account.email !== null) claims.email = account.email;
  if (account.email_verified !== undefined && account.email_verified !== null) {
    claims.email_verified = account.email_verified;
  }
  Object.assign(claims, account.claims || {});
  Object.assign(claims, (use === 'id_token' ? account.id_token_claims : account.userinfo_claims) || {});
  return claims;
}

// --- signing keys -----------------------------------------------------------

const DEFAULT_ALG = 'RS256';
let generated = 0;

// A private JWK from a key spec: a private JWK as it is (`d` present), a PEM
// (`pem`, PKCS#8) with `kid` and `alg`, or `{kid, alg}` alone for a key
// generated here.
async function privateJwk(spec) {
  if (spec.d) return { use: 'sig', ...spec };
  const alg = spec.alg || DEFAULT_ALG;
  generated += 1;
  const kid = spec.kid || `generated-${generated}-${crypto.randomBytes(4).toString('hex')}`;
  let key;
  if (spec.pem) {
    key = await jose.importPKCS8(spec.pem, alg, { extractable: true });
  } else {
    ({ privateKey: key } = await jose.generateKeyPair(alg, { extractable: true }));
  }
  return { ...(await jose.exportJWK(key)), kid, alg, use: 'sig' };
}

async function privateJwks(specs) {
  const list = specs && specs.length ? specs : [{ alg: DEFAULT_ALG }];
  return Promise.all(list.map(privateJwk));
}

function publicJwk(jwk) {
  const {
    d, p, q, dp, dq, qi, ...rest
  } = jwk;
  return rest;
}

// --- clients ----------------------------------------------------------------

// Per client: the fields oidc-provider does not know, kept here.
const clientExtras = new Map();

function providerClient(client) {
  const {
    apple_client_secret: apple, response_modes: responseModes, ...metadata
  } = client;
  const extras = { apple, responseModes, internalSecret: undefined };
  if (apple) {
    // oidc-provider checks a static secret; the JWT is checked here with
    // jose first, then swapped for this.
    extras.internalSecret = crypto.randomBytes(24).toString('base64url');
    metadata.client_secret = extras.internalSecret;
    metadata.token_endpoint_auth_method = 'client_secret_post';
  }
  clientExtras.set(String(client.client_id), extras);
  return {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...metadata,
  };
}

const clients = (config.clients || []).map(providerClient);

// Apple's client secret: an ES256 JWT signed by the team's key, `iss` the
// team id, `sub` the client id, `aud` Apple, `kid` the key id, at most six
// months long. Undefined when it holds, else why not.
async function appleSecretProblem(apple, clientId, secret) {
  if (typeof secret !== 'string' || !secret) return 'no client_secret';
  try {
    const key = await jose.importSPKI(apple.public_key, 'ES256');
    const { payload, protectedHeader } = await jose.jwtVerify(secret, key, {
      algorithms: ['ES256'],
      issuer: apple.team_id,
      subject: clientId,
      audience: APPLE_AUDIENCE,
      requiredClaims: ['iat', 'exp'],
    });
    if (protectedHeader.kid !== apple.key_id) return `kid ${protectedHeader.kid} is not ${apple.key_id}`;
    if (payload.exp - payload.iat > APPLE_MAX_LIFETIME) return 'lives longer than six months';
    return undefined;
  } catch (error) {
    return `${error.code || 'error'}: ${error.message}`;
  }
}

// --- the provider -----------------------------------------------------------

const cookieKeys = [crypto.randomBytes(32).toString('base64url')];
let provider;
let keys;
let callback;

function buildProvider(issuer) {
  const configuration = {
    clients: clients.map((client) => ({ ...client })),
    jwks: { keys: keys.map((jwk) => ({ ...jwk })) },
    cookies: { keys: cookieKeys },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'picture', 'locale'],
    },
    // false (the default here): the id token carries the email claims the
    // scopes grant, as Google's does; true: only userinfo has them.
    conformIdTokenClaims: Boolean(config.claims_only_at_userinfo),
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    async findAccount(ctx, sub) {
      const account = accounts.get(String(sub));
      if (!account) return undefined;
      return {
        accountId: String(account.sub),
        claims: async (use) => claimsOf(account, use),
      };
    },
    async renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
  if (config.pkce_required !== undefined) {
    configuration.pkce = { required: () => Boolean(config.pkce_required) };
  }
  const built = new Provider(issuer, configuration);
  // Discovery overrides from the config: each field set, or removed when null.
  built.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/.well-known/openid-configuration' && ctx.body && config.discovery) {
      const document = { ...ctx.body };
      for (const [field, value] of Object.entries(config.discovery)) {
        if (value === null) delete document[field];
        else document[field] = value;
      }
      ctx.body = document;
    }
  });
  return built;
}

// --- interactions (login and consent) ---------------------------------------

function interactionPage(uid, prompt, params, problem) {
  const client = escapeHtml(params.client_id);
  const action = `/interaction/${escapeHtml(uid)}`;
  const form = prompt === 'login'
    ? `<label for="login">Account (sub)</label>
    <input id="login" name="login" autofocus autocomplete="off">
    <button id="submit" type="submit">Sign in</button>`
    : `<p>Allow ${client} to read: ${escapeHtml(params.scope || '')}</p>
    <button id="submit" type="submit">Allow</button>`;
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Test OP: ${escapeHtml(prompt)}</title></head>
<body data-prompt="${escapeHtml(prompt)}" data-uid="${escapeHtml(uid)}">
  <h1>Test OpenID Provider: ${prompt === 'login' ? 'sign in' : 'consent'}</h1>
  <p>Client: <code>${client}</code></p>
  ${problem ? `<p id="problem">${escapeHtml(problem)}</p>` : ''}
  <form id="interaction" method="post" action="${action}">
    ${form}
  </form>
  <form id="abort" method="post" action="${action}/abort">
    <button id="cancel" type="submit">Cancel</button>
  </form>
</body></html>`;
}

async function interaction(req, res, url, body) {
  const [, , uid, action] = url.pathname.split('/');
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (error) {
    return sendJson(res, 400, { error: 'invalid_request', error_description: `no interaction: ${error.message}` });
  }
  if (details.uid !== uid) {
    return sendJson(res, 400, { error: 'invalid_request', error_description: 'interaction cookie is for another uid' });
  }
  const { prompt, params, session } = details;
  if (req.method === 'GET' && !action) {
    return sendHtml(res, 200, interactionPage(uid, prompt.name, params));
  }
  if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (action) return sendJson(res, 404, { error: 'no such interaction action' });
  if (prompt.name === 'login') {
    const sub = body && typeof body.login === 'string' ? body.login : '';
    if (!accounts.has(sub)) {
      return sendHtml(res, 400, interactionPage(uid, prompt.name, params, `no account ${sub}`));
    }
    return provider.interactionFinished(req, res, {
      login: { accountId: sub },
    }, { mergeWithLastSubmission: false });
  }
  if (prompt.name === 'consent') {
    const { details: missing } = prompt;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  }
  return sendJson(res, 501, { error: `prompt ${prompt.name} not implemented` });
}

// --- the main server's requests ----------------------------------------------

async function handle(req, res, entry) {
  const url = new URL(req.url, 'http://placeholder');
  let body;
  if (req.method === 'POST' || req.method === 'PUT') {
    ({ body } = await readBody(req));
    // oidc-provider takes an already read body from req.body.
    req.body = body;
    entry.body = body;
  }

  if (url.pathname.startsWith('/interaction/')) {
    return interaction(req, res, url, body);
  }

  // A client limited to some response modes (Apple: form_post).
  if (url.pathname === '/auth') {
    const params = req.method === 'POST' ? (body || {}) : Object.fromEntries(url.searchParams);
    const extras = clientExtras.get(String(params.client_id));
    const responseMode = params.response_mode || 'query';
    if (extras && extras.responseModes && !extras.responseModes.includes(responseMode)) {
      return sendJson(res, 400, {
        error: 'invalid_request',
        error_description: `response_mode ${responseMode} is not allowed for this client (${extras.responseModes.join(', ')})`,
      });
    }
  }

  // Apple-style clients: the client secret is a JWT, checked with jose
  // before oidc-provider sees the request.
  if (url.pathname === '/token' && req.method === 'POST' && body && typeof body === 'object') {
    const basic = basicCredentials(req);
    const clientId = basic ? basic[0] : body.client_id;
    const extras = clientExtras.get(String(clientId));
    if (extras && extras.apple) {
      if (basic) {
        entry.apple_client_secret = 'sent with HTTP Basic, not client_secret_post';
        return sendJson(res, 401, { error: 'invalid_client', error_description: entry.apple_client_secret });
      }
      const problem = await appleSecretProblem(extras.apple, String(clientId), body.client_secret);
      entry.apple_client_secret = problem || 'valid';
      if (problem) {
        return sendJson(res, 401, { error: 'invalid_client', error_description: `client secret JWT: ${problem}` });
      }
      body.client_secret = extras.internalSecret;
    }
  }

  return callback(req, res);
}

// --- control ----------------------------------------------------------------

async function rotateKeys(body) {
  if (body && Array.isArray(body.keys)) {
    keys = await privateJwks(body.keys);
  } else {
    // A new key of the signing key's algorithm, in front (it signs from now
    // on); the old ones stay published so tokens they signed still verify.
    const alg = keys[0].alg || DEFAULT_ALG;
    keys = [await privateJwk({ alg }), ...keys];
  }
  provider = buildProvider(provider.issuer);
  callback = provider.callback();
}

function jwksDocument() {
  return { keys: keys.map(publicJwk) };
}

async function control(req, res, url, body) {
  if (req.method === 'POST' && url.pathname === '/__control/rotate-keys') {
    await rotateKeys(body);
    sendJson(res, 200, { signing_kid: keys[0].kid, jwks: jwksDocument() });
    return true;
  }
  if (req.method === 'GET' && url.pathname === '/__control/keys') {
    sendJson(res, 200, { signing_kid: keys[0].kid, jwks: jwksDocument() });
    return true;
  }
  if (req.method === 'PUT' && url.pathname === '/__control/accounts') {
    setAccounts(body && body.accounts);
    sendJson(res, 200, { accounts: [...accounts.keys()] });
    return true;
  }
  if (req.method === 'POST' && url.pathname === '/__control/sign') {
    // Any claims, signed with one of the provider's keys (the signing key
    // unless `kid` names another); `header` fields override the protected
    // header (`kid` included, to name a key nobody has).
    const jwk = body.kid ? keys.find((k) => k.kid === body.kid) : keys[0];
    if (!jwk) throw new Error(`no key ${body.kid}`);
    const key = await jose.importJWK(jwk, jwk.alg);
    const token = await new jose.SignJWT(body.claims || {})
      .setProtectedHeader({ alg: jwk.alg, kid: jwk.kid, typ: 'JWT', ...(body.header || {}) })
      .sign(key);
    sendJson(res, 200, { token });
    return true;
  }
  return false;
}

// --- start ------------------------------------------------------------------

const started = Date.now();
keys = await privateJwks(config.keys);
console.error(`provider: ${keys.length} signing key(s) ready after ${Date.now() - started} ms`);
await serve(config, {
  name: 'provider',
  handle,
  control,
  ready: async (issuer) => {
    provider = buildProvider(issuer);
    callback = provider.callback();
  },
});

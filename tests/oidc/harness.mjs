// What provider.mjs and github.mjs share: reading the JSON config named on
// the command line, a main server (http, or https with the config's `tls`
// cert and key) whose every request is logged, a mode (`normal`, `silent`:
// connections accepted and never answered, `down`: not listening, the
// process and its state kept), and a control server on a port of its own,
// always plain http on 127.0.0.1, that answers in every mode. See README.md.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as querystring from 'node:querystring';

// stdout carries one line, the JSON that says where the servers listen; the
// libraries' notices (oidc-provider prints some with console.info) go to
// stderr with everything else.
console.info = console.error;
console.log = console.error;

export function readConfig() {
  const path = process.argv[2];
  if (!path) {
    console.error(`usage: node ${process.argv[1]} CONFIG.json`);
    process.exit(2);
  }
  return JSON.parse(fs.readFileSync(path, 'utf8'));
}

// The request body, read whole: a form or JSON body parsed into an object,
// anything else as a string ('' when there is none).
export async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString('utf8');
  const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') {
    return { raw, body: { ...querystring.parse(raw) } };
  }
  if (type === 'application/json') {
    try {
      return { raw, body: JSON.parse(raw) };
    } catch {
      return { raw, body: undefined };
    }
  }
  return { raw, body: raw };
}

// HTTP Basic credentials (`[user, password]`, form-decoded as RFC 6749
// §2.3.1 says), or undefined.
export function basicCredentials(req) {
  const header = req.headers.authorization || '';
  const [scheme, value] = header.split(' ');
  if (!value || scheme.toLowerCase() !== 'basic') return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const unescape = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
  try {
    return [unescape(decoded.slice(0, colon)), unescape(decoded.slice(colon + 1))];
  } catch {
    return [decoded.slice(0, colon), decoded.slice(colon + 1)];
  }
}

export function sendJson(res, status, value, headers = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

export function sendHtml(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
  });
  res.end(html);
}

export function escapeHtml(value) {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

// The main server and the control server. `handle(req, res, entry)` answers
// the main server's requests in normal mode; `entry` is the request's log
// entry (the handler may add to it). `control(req, res, body)` answers
// `/__control/...` requests that harness itself does not.
export async function serve(config, { name, handle, control, ready }) {
  const mode = { value: config.mode || 'normal' };
  const log = [];
  const held = new Set();
  const port = config.port || 0;
  const host = '127.0.0.1';

  const onRequest = async (req, res) => {
    const url = new URL(req.url, 'http://placeholder');
    const entry = {
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      authorization: (req.headers.authorization || '').split(' ')[0] || null,
      accept: req.headers.accept || null,
      user_agent: req.headers['user-agent'] || null,
      content_type: req.headers['content-type'] || null,
    };
    log.push(entry);
    if (mode.value === 'silent') {
      // Accepted, never answered: the request is held until the mode
      // changes (then its connection is cut) or the client gives up.
      entry.held = true;
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    try {
      await handle(req, res, entry);
    } catch (error) {
      console.error(`${name}: ${req.method} ${req.url}:`, error);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(error) });
      else res.destroy();
    }
  };

  const server = config.tls
    ? https.createServer({
      cert: fs.readFileSync(config.tls.cert),
      key: fs.readFileSync(config.tls.key),
    }, onRequest)
    : http.createServer(onRequest);
  // Keep-alive connections would keep a `down` server reachable.
  server.keepAliveTimeout = 1000;

  const listen = (srv, p) => new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(p, host, () => {
      srv.off('error', reject);
      resolve(srv.address().port);
    });
  });

  const setMode = async (next) => {
    if (!['normal', 'silent', 'down'].includes(next)) throw new Error(`unknown mode ${next}`);
    const previous = mode.value;
    if (previous === next) return;
    if (previous === 'silent') {
      for (const res of held) res.destroy();
      held.clear();
    }
    if (next === 'down') {
      await new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    if (previous === 'down') {
      await listen(server, boundPort);
    }
    mode.value = next;
  };

  const boundPort = mode.value === 'down' ? port : await listen(server, port);
  if (mode.value === 'down' && !boundPort) throw new Error('mode "down" at start needs a fixed "port"');

  const controlServer = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://placeholder');
      const { body } = await readBody(req);
      if (req.method === 'GET' && url.pathname === '/__control/health') {
        return sendJson(res, 200, { ok: true, mode: mode.value });
      }
      if (req.method === 'POST' && url.pathname === '/__control/mode') {
        await setMode(body && body.mode);
        return sendJson(res, 200, { mode: mode.value });
      }
      if (req.method === 'GET' && url.pathname === '/__control/requests') {
        return sendJson(res, 200, log);
      }
      if (req.method === 'DELETE' && url.pathname === '/__control/requests') {
        log.length = 0;
        return sendJson(res, 200, []);
      }
      if (await control(req, res, url, body)) return undefined;
      return sendJson(res, 404, { error: 'no such control route', path: url.pathname });
    } catch (error) {
      console.error(`${name} control: ${req.method} ${req.url}:`, error);
      return sendJson(res, 400, { error: String(error && error.message ? error.message : error) });
    }
  });
  const controlPort = await listen(controlServer, config.control_port || 0);

  const scheme = config.tls ? 'https' : 'http';
  const origin = `${scheme}://${config.host || host}:${boundPort}`;
  await ready(origin);
  console.error(`${name}: listening at ${origin}, control port ${controlPort}`);
  process.stdout.write(`${JSON.stringify({
    name, origin, issuer: origin, port: boundPort, control_port: controlPort,
  })}\n`);

  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return { origin, port: boundPort };
}

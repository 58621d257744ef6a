// Service B in Node: an Express resource server that checks m2m-auth access tokens by
// introspection (RFC 7662) and enforces scopes, answering per RFC 6750.
//
//   npm ci && npm start
//
// Environment (the same variables as examples/resource-server, see README.md):
//   M2M_AUTH_ISSUER         the authorization server; the introspection endpoint comes from
//                           its metadata (/.well-known/oauth-authorization-server, RFC 8414)
//   RESOURCE_CLIENT_ID      this service's own client at the authorization server
//   RESOURCE_CLIENT_SECRET
//   RESOURCE_VALIDATION     introspection (the default; the only mode of this example)
//   RESOURCE_AUDIENCE       if set, the token's aud must name it
//   RESOURCE_CACHE_MAX_TTL  seconds a cached introspection answer may be reused (default 5;
//                           0: ask for every request). A revoked token is accepted at most
//                           this long after its revocation.
//   PORT                    default 8082; HOST default 127.0.0.1

import { createHash } from 'node:crypto';
import express from 'express';

const REALM = 'm2m-auth';
const NEGATIVE_TTL = 1; // seconds an inactive answer is reused (never more than the max TTL)
const MAX_ENTRIES = 10_000;
const TIMEOUT_MS = 5_000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`resource-server-node: set ${name}`);
    process.exit(2);
  }
  return value;
}

const issuer = required('M2M_AUTH_ISSUER').replace(/\/+$/, '');
const clientId = required('RESOURCE_CLIENT_ID');
const clientSecret = required('RESOURCE_CLIENT_SECRET');
const mode = (process.env.RESOURCE_VALIDATION || 'introspection').trim().toLowerCase();
if (mode !== 'introspection') {
  console.error(
    `resource-server-node: RESOURCE_VALIDATION=${mode} is not supported here: this example ` +
      'introspects (use examples/resource-server for local JWT validation)',
  );
  process.exit(2);
}
const audience = process.env.RESOURCE_AUDIENCE || null;
const cacheMaxTtl = Number(process.env.RESOURCE_CACHE_MAX_TTL ?? '5');
if (!Number.isFinite(cacheMaxTtl) || cacheMaxTtl < 0) {
  console.error('resource-server-node: RESOURCE_CACHE_MAX_TTL must be a number of seconds >= 0');
  process.exit(2);
}
const port = Number(process.env.PORT || '8082');
const host = process.env.HOST || '127.0.0.1';

// RFC 6749 §2.3.1: client_id and secret are form-encoded before they go into Basic auth.
const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, '+');
const basicAuth =
  'Basic ' + Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64');

class Unavailable extends Error {}

// --- discovery ------------------------------------------------------------------------------
let introspectionUrl = null;
async function getIntrospectionUrl() {
  if (introspectionUrl) return introspectionUrl;
  let response;
  try {
    response = await fetch(`${issuer}/.well-known/oauth-authorization-server`, {
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    throw new Unavailable(`discovery failed: ${err.message}`);
  }
  if (!response.ok) throw new Unavailable(`discovery answered ${response.status}`);
  const metadata = await response.json();
  if (typeof metadata.introspection_endpoint !== 'string') {
    throw new Unavailable('the metadata has no introspection_endpoint');
  }
  introspectionUrl = metadata.introspection_endpoint;
  return introspectionUrl;
}

// --- introspection with a bounded cache keyed by the token's SHA-256 --------------------------
const cache = new Map(); // digest -> { claims (or null: inactive), until (ms) }
const inflight = new Map(); // digest -> Promise<claims|null>

function cacheGet(key) {
  const entry = cache.get(key);
  if (!entry) return undefined;
  if (entry.until <= Date.now()) {
    cache.delete(key);
    return undefined;
  }
  return entry.claims;
}

function cachePut(key, claims, seconds) {
  if (!(seconds > 0)) return;
  cache.delete(key);
  while (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value); // oldest first
  cache.set(key, { claims, until: Date.now() + seconds * 1000 });
}

async function introspect(token, key) {
  const url = await getIntrospectionUrl();
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Accept: 'application/json',
        Authorization: basicAuth,
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    throw new Unavailable(`introspection failed: ${err.message}`);
  }
  if (response.status === 401 || response.status === 400 || response.status === 403) {
    console.error(
      `resource-server-node: the authorization server refused our own credentials (${response.status}); ` +
        'check RESOURCE_CLIENT_ID / RESOURCE_CLIENT_SECRET',
    );
    throw new Unavailable('introspection refused this service');
  }
  if (!response.ok) throw new Unavailable(`introspection answered ${response.status}`);
  const payload = await response.json();
  const now = Date.now() / 1000;
  if (payload.active !== true) {
    cachePut(key, null, Math.min(NEGATIVE_TTL, cacheMaxTtl));
    return null;
  }
  // At most min(exp - now, RESOURCE_CACHE_MAX_TTL): never past exp, never longer than the bound.
  const ttl = typeof payload.exp === 'number' ? Math.min(payload.exp - now, cacheMaxTtl) : cacheMaxTtl;
  cachePut(key, payload, ttl);
  return payload;
}

async function verify(token) {
  const key = createHash('sha256').update(token).digest('hex');
  let claims = cacheGet(key);
  if (claims === undefined) {
    let pending = inflight.get(key);
    if (!pending) {
      pending = introspect(token, key).finally(() => inflight.delete(key));
      inflight.set(key, pending);
    }
    claims = await pending;
  }
  if (claims === null) return { error: 'the access token is not active' };
  if (typeof claims.exp === 'number' && claims.exp <= Date.now() / 1000) {
    return { error: 'the access token expired' };
  }
  if (audience !== null) {
    const aud = Array.isArray(claims.aud) ? claims.aud : claims.aud ? [claims.aud] : [];
    if (!aud.includes(audience)) return { error: 'the access token is not meant for this service' };
  }
  return { claims };
}

// --- RFC 6750 answers --------------------------------------------------------------------------
const quote = (s) => s.replace(/["\\]/g, '');
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

function refuse(res, status, error, description, scope) {
  let challenge = `Bearer realm="${REALM}"`;
  if (error) challenge += `, error="${error}", error_description="${quote(description)}"`;
  if (scope) challenge += `, scope="${scope}"`;
  res.set('WWW-Authenticate', challenge);
  res.set('Cache-Control', 'no-store');
  const body = error ? { error, error_description: description } : { error: 'unauthorized' };
  if (scope) body.scope = scope;
  res.status(status).json(body);
}

// Middleware: a valid bearer token carrying every scope given.
function requireScopes(...wanted) {
  const scopes = wanted.join(' ').split(/\s+/).filter(Boolean);
  return async (req, res, next) => {
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null;
    if (!header || !/^Bearer(\s|$)/i.test(header)) {
      console.info(`refused ${req.method} ${req.path}: no bearer token`);
      return refuse(res, 401); // no token: a bare challenge, no error code (RFC 6750 §3.1)
    }
    if (!match || !B64TOKEN.test(match[1])) {
      console.info(`refused ${req.method} ${req.path}: malformed bearer token`);
      return refuse(res, 401, 'invalid_token', 'The access token is malformed');
    }
    let result;
    try {
      result = await verify(match[1]);
    } catch (err) {
      if (!(err instanceof Unavailable)) return next(err);
      console.warn(`cannot check the token for ${req.method} ${req.path}: ${err.message}`);
      res.set('Retry-After', '5');
      return res.status(503).json({
        error: 'temporarily_unavailable',
        error_description: 'The authorization server cannot be reached',
      });
    }
    if (result.error) {
      console.info(`refused ${req.method} ${req.path}: ${result.error}`);
      return refuse(res, 401, 'invalid_token', result.error);
    }
    const granted = new Set(String(result.claims.scope || '').split(/\s+/).filter(Boolean));
    const missing = scopes.filter((s) => !granted.has(s));
    if (missing.length) {
      console.info(
        `refused ${req.method} ${req.path}: client ${result.claims.client_id} lacks scope ${missing.join(' ')}`,
      );
      return refuse(res, 403, 'insufficient_scope', `The access token lacks scope ${missing.join(' ')}`, scopes.join(' '));
    }
    req.claims = result.claims;
    return next();
  };
}

// --- the service -------------------------------------------------------------------------------
const app = express();
app.disable('x-powered-by');

app.get('/healthz', (req, res) => res.json({ status: 'ok' }));

app.get('/protected', requireScopes('read'), (req, res) => {
  const scope = String(req.claims.scope || '').split(/\s+/).filter(Boolean).sort();
  res.json({ message: 'hello from service B (node)', client_id: req.claims.client_id, scope });
});

// A second scope check: one more middleware on the route, nothing else.
app.post('/things', requireScopes('admin:write'), (req, res) => {
  res.status(201).json({ created: true, by: req.claims.client_id });
});

app.listen(port, host, (err) => {
  if (err) {
    console.error(`resource-server-node: cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  }
  console.info(
    `resource-server-node on http://${host}:${port} (issuer ${issuer}, introspection, cache max ${cacheMaxTtl} s)`,
  );
});

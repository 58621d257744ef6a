// node oidc-provider configured like m2m-auth, for bench/compare.py: one confidential client
// (client_secret_basic), the client_credentials grant, introspection and revocation, and RFC 8707
// resource indicators whose resource servers get JWT access tokens (RS256 or ES256).
// Without a resource the token is opaque. Its store is the library's default: in memory.
//
//   PORT=8080 CLIENT_ID=... CLIENT_SECRET=... node server.js
//
// GET /hello answers {"hello":"world"} from a Koa middleware in front of the provider:
// the ceiling of this stack (Koa on node), measured by the same harness.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT ?? 8080);
const issuer = `http://127.0.0.1:${port}`;
const ttl = Number(process.env.TOKEN_TTL ?? 600); // m2m-auth's default access-token lifetime

// Fresh signing keys on every start, as m2m-auth generates its own on first start.
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

// Resource indicator -> JWT signing algorithm of its access tokens.
const resources = {
  'https://rs256.bench.invalid/': 'RS256',
  'https://es256.bench.invalid/': 'ES256',
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID ?? 'bench',
    client_secret: process.env.CLIENT_SECRET ?? randomBytes(32).toString('base64url'),
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'read',
  }],
  jwks: { keys: [{ ...rsa, kid: 'rsa', use: 'sig', alg: 'RS256' }, { ...ec, kid: 'ec', use: 'sig', alg: 'ES256' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined, // no resource: an opaque token
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, resource) => {
        const alg = resources[resource];
        if (!alg) throw new Provider.errors.InvalidTarget();
        return { scope: 'read', audience: resource, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg } } };
      },
    },
  },
  ttl: { ClientCredentials: ttl },
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256'] },
});

// The provider is a Koa application: a middleware put first, before the provider's own, answers /hello.
provider.middleware.unshift(async (ctx, next) => {
  if (ctx.path === '/hello') {
    ctx.type = 'application/json';
    ctx.body = '{"hello":"world"}';
    return;
  }
  await next();
});
provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`oidc-provider listening on ${issuer}\n`);
});

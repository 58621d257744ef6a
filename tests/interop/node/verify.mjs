// Verify an m2m-auth JWT access token the way a Node resource server would (RFC 9068 §4):
// keys from the server's JWKS, pinned issuer and audience, typ at+jwt.
// Usage: node verify.mjs JWKS_URL TOKEN ISSUER AUDIENCE [TYP]
// Prints the payload as JSON and exits 0, or prints the error code and exits 1.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUrl, token, issuer, audience, typ = "at+jwt"] = process.argv.slice(2);
if (!jwksUrl || !token || !issuer || !audience) {
  console.error("usage: node verify.mjs JWKS_URL TOKEN ISSUER AUDIENCE [TYP]");
  process.exit(2);
}

try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    typ,
    algorithms: ["RS256", "ES256", "EdDSA", "Ed25519"],
  });
  console.log(JSON.stringify({ header: protectedHeader, payload }));
} catch (err) {
  console.error(`${err.code ?? err.name}: ${err.message}`);
  process.exit(1);
}

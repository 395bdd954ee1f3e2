// Verify a tokenward client token with Node's `jose` only (no tokenward code).
// stdin: {"token", "jwks", "issuer", "audience", "now"}; stdout: the verified claims as JSON,
// or {"error": "<jose error code>"} with exit status 1.
import { createLocalJWKSet, jwtVerify } from "jose";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
try {
  const { payload, protectedHeader } = await jwtVerify(input.token, createLocalJWKSet(input.jwks), {
    issuer: input.issuer,
    audience: input.audience,
    algorithms: ["EdDSA", "Ed25519"],
    currentDate: new Date(input.now * 1000),
  });
  process.stdout.write(JSON.stringify({ header: protectedHeader, claims: payload }));
} catch (error) {
  process.stdout.write(JSON.stringify({ error: error.code ?? String(error) }));
  process.exit(1);
}

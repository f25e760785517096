// A real OpenID provider for the sign-in tests: npm's oidc-provider (certified), installed by
// tools/build_oidc_provider.sh, with users, passwords and groups from a JSON file, a login form of its own (no
// devInteractions), consent given for its one client, and RP-initiated logout.
// Usage: NODE_PATH=<prefix>/lib/node_modules node provider.mjs CONFIG.json   (tests/oidc/provider.py starts it)
// CONFIG: {"port", "issuer", "client": {client_id, client_secret, redirect_uris, post_logout_redirect_uris},
//          "resources": {url: scope}, "opaque_clients": [client_id], "access_token_ttl": seconds (600),
//          "refresh_tokens": true (a refresh token, rotated at each use, for every client that may refresh),
//          "users": [{"sub", "login", "password", "email", "email_verified", "name", "groups", "argo_user"?}],
//          "jwks": {"keys": [...]}}
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.env.NODE_PATH, 'noop.js'));
const { default: Provider, errors } = await import(require.resolve('oidc-provider'));
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = new Map(config.users.map((u) => [u.sub, u]));
const scope = 'openid email profile';
// Resource servers (the proxy's /mcp, for MCP clients): {url: scope}; a client in opaque_clients gets opaque access
// tokens for them (the proxy introspects those), any other a JWT. Without `resources` the features stay off.
const resources = config.resources || {};
const opaque = new Set(config.opaque_clients || []);
const oauth = Object.keys(resources).length > 0;
let introspections = 0;
const grants = { refreshed: 0, refused: 0 }; // refresh_token grants given and refused (a replayed one among them)
function requested(ctx) {
  const asked = ctx.oidc.params?.resource;
  return (Array.isArray(asked) ? asked : [asked]).filter((r) => r && resources[r]);
}

const provider = new Provider(config.issuer, {
  clients: [{ ...config.client, grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic' }],
  jwks: config.jwks,
  scopes: ['openid', 'email', 'profile', ...new Set(Object.values(resources))],
  cookies: { keys: ['cot-proxy-test-provider'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups', 'argo_user'] },
  conformIdTokenClaims: false, // the claims go into the ID token, as most providers put them
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true },
    registration: { enabled: oauth }, introspection: { enabled: oauth }, revocation: { enabled: oauth },
    resourceIndicators: { enabled: oauth, useGrantedResource: () => true,
      defaultResource: (ctx, client, oneOf) => oneOf || undefined,
      getResourceServerInfo: (ctx, resource, client) => {
        if (!resources[resource]) throw new errors.InvalidTarget();
        return { scope: resources[resource], audience: resource, accessTokenTTL: config.access_token_ttl || 600,
          accessTokenFormat: opaque.has(client.clientId) ? 'opaque' : 'jwt' };
      } } },
  // A refresh token without offline_access (and so without prompt=consent) when asked for: as many providers do
  // for a client registered with the refresh_token grant; public clients' are rotated at each use (the default).
  ...(config.refresh_tokens ? { issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token') }
    : {}),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const user = users.get(sub);
    if (!user) return undefined;
    return { accountId: sub, async claims() {
      return { sub, email: user.email, email_verified: user.email_verified, name: user.name, groups: user.groups,
        argo_user: user.argo_user }; // (an undefined one is left out of the token)
    } };
  },
  async loadExistingGrant(ctx) { // consent for the one client's scopes, as a first-party login does
    const { client, session } = ctx.oidc;
    const known = session.grantIdFor(client.clientId);
    const found = known && await ctx.oidc.provider.Grant.find(known);
    const grant = found || new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope([scope, ...(ctx.oidc.params.scope || '').split(' ')].join(' ').trim());
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'groups', 'argo_user']);
    for (const resource of requested(ctx)) grant.addResourceScope(resource, resources[resource]);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
provider.on('grant.success', (ctx) => { if (ctx.oidc.params.grant_type === 'refresh_token') grants.refreshed += 1; });
provider.on('grant.error', (ctx) => { if (ctx.oidc.params?.grant_type === 'refresh_token') grants.refused += 1; });

function form(uid, note) {
  return `<!doctype html><title>Sign in</title><p>${note}</p><form method="post" action="/interaction/${uid}/login">` +
    '<input name="login"><input name="password" type="password"><button>Sign in</button></form>';
}

async function body(req) {
  let data = '';
  for await (const chunk of req) data += chunk;
  return new URLSearchParams(data);
}

async function interaction(req, res) {
  const [, , uid, action] = new URL(req.url, config.issuer).pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (details.prompt.name === 'consent') { // a native client (a loopback redirect) is always asked: given at once
    const { Grant } = provider;
    const grant = details.grantId ? await Grant.find(details.grantId)
      : new Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    grant.addOIDCScope([scope, details.params.scope || ''].join(' ').trim());
    for (const resource of [details.params.resource].flat().filter((r) => r && resources[r])) {
      grant.addResourceScope(resource, resources[resource]);
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html' }).end(form(uid, 'Sign in'));
    return;
  }
  if (action === 'login') {
    const fields = await body(req);
    const user = config.users.find((u) => u.login === fields.get('login') && u.password === fields.get('password'));
    if (!user) {
      res.writeHead(200, { 'content-type': 'text/html' }).end(form(uid, 'Wrong login or password'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
    return;
  }
  res.writeHead(404).end();
}

const server = http.createServer((req, res) => {
  if (req.url === '/test/introspections') { // how often the proxy asked (the tests count its cache's misses)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: introspections }));
    return;
  }
  if (req.url === '/test/grants') { // how many refreshes it gave and refused
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(grants));
    return;
  }
  if (req.url.startsWith('/token/introspection')) introspections += 1;
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => { res.writeHead(400).end(String(err)); });
  } else {
    provider.callback()(req, res);
  }
});
server.listen(config.port, '127.0.0.1', () => { console.log(`listening ${config.issuer}`); });

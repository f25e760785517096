// A real OpenID provider for the sign-in tests: npm's oidc-provider (certified), installed by
// tools/build_oidc_provider.sh, with users, passwords and groups from a JSON file, a login form of its own (no
// devInteractions), consent given for its one client, and RP-initiated logout.
// Usage: NODE_PATH=<prefix>/lib/node_modules node provider.mjs CONFIG.json   (tests/oidc/provider.py starts it)
// CONFIG: {"port", "issuer", "client": {client_id, client_secret, redirect_uris, post_logout_redirect_uris},
//          "users": [{"sub", "login", "password", "email", "email_verified", "name", "groups", "argo_user"?}],
//          "jwks": {"keys": [...]}}
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.env.NODE_PATH, 'noop.js'));
const { default: Provider } = await import(require.resolve('oidc-provider'));
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = new Map(config.users.map((u) => [u.sub, u]));
const scope = 'openid email profile';

const provider = new Provider(config.issuer, {
  clients: [{ ...config.client, grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic' }],
  jwks: config.jwks,
  cookies: { keys: ['cot-proxy-test-provider'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups', 'argo_user'] },
  conformIdTokenClaims: false, // the claims go into the ID token, as most providers put them
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
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
    if (known) return ctx.oidc.provider.Grant.find(known);
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope(scope);
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'groups', 'argo_user']);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

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
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => { res.writeHead(400).end(String(err)); });
  } else {
    provider.callback()(req, res);
  }
});
server.listen(config.port, '127.0.0.1', () => { console.log(`listening ${config.issuer}`); });

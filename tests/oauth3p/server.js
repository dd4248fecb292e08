#!/usr/bin/env node
// oauth3p: a third-party OAuth 2.0 server (oauth2-mock-server, from npm) for fogate's
// token tests, so they do not depend on the D365 simulator's own token endpoint.
//
//   node tests/oauth3p/server.js [--port N] [--lifetime S] [--secret-file F] [--shape v2|v1|raw]
//
// Listens on 127.0.0.1 only (port 0: the kernel picks one) and prints one JSON line
// {"listening": PORT, "pid": PID} on stdout once it accepts connections.
// Endpoints (those of oauth2-mock-server, plus one of ours):
//   POST /token      the token endpoint (any grant; fogate sends client_credentials)
//   GET  /jwks       the signing keys (RS256)
//   GET  /_stats     what happened: token requests per grant_type, refusals, and every
//                    issued token with its form fields (never client_secret or
//                    client_assertion), for the tests to compare with what D365 saw.
// Response shaping (hooks):
//   --lifetime S     exp = iat + S in the JWT and expires_in = S in the response
//                    (default 3600).
//   --shape v2       the response looks like Entra's v2 endpoint: token_type "Bearer",
//                    expires_in and ext_expires_in as JSON integers, no scope (default).
//   --shape v1       like Entra's v1 endpoint: numbers as decimal strings (expires_in,
//                    ext_expires_in, expires_on, not_before) and the resource echoed.
//   --shape raw      oauth2-mock-server's own shape (expires_in set to the lifetime).
//   subject=S        (a form field of the token request) sets the sub claim, so the
//                    server can play a Kubernetes service account token issuer for
//                    workload identity federation (with scope=api://AzureADTokenExchange,
//                    aud is that audience).
//   --secret-file F  only a client_secret equal to the content of file F (one trailing
//                    newline dropped) is accepted; any other one (or none) gets 401
//                    {"error":"invalid_client", ...}: a standard OAuth error body without
//                    an Entra AADSTS code. Default: any secret accepted. The secret is
//                    read from a file so that it never shows on a command line (ps).
// Stops on SIGTERM/SIGINT. Nothing here makes an outgoing connection.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

function loadMock() {
  try {
    return require('oauth2-mock-server');
  } catch (e) {
    const tests = path.resolve(__dirname, '..');
    process.stderr.write(`oauth2-mock-server is not installed (${e.message}).\n` +
      `Install the test tools with: npm ci --prefix ${tests}\n`);
    process.exit(2);
  }
}

function parseArgs(argv) {
  const opts = { port: 0, lifetime: 3600, secret: null, shape: 'v2' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const val = argv[i + 1];
    if (val === undefined) throw new Error(`missing value for ${key}`);
    if (key === '--port') opts.port = Number.parseInt(val, 10);
    else if (key === '--lifetime') opts.lifetime = Number.parseInt(val, 10);
    else if (key === '--secret-file') opts.secret = fs.readFileSync(val, 'utf8').replace(/\n$/, '');
    else if (key === '--shape') opts.shape = val;
    else throw new Error(`unknown option ${key}`);
  }
  if (!(opts.port >= 0 && opts.port <= 65535)) throw new Error('bad --port');
  if (!['v2', 'v1', 'raw'].includes(opts.shape)) throw new Error('bad --shape');
  if (!(opts.lifetime >= 1 && opts.lifetime <= 86400)) throw new Error('bad --lifetime');
  return opts;
}

// Keeps the fields of a token request that tell what was asked for; never a credential.
function formSummary(body) {
  const out = {};
  for (const [k, v] of Object.entries(body || {})) {
    if (k === 'client_secret' || k === 'client_assertion') out[k] = '<present>';
    else out[k] = typeof v === 'string' ? v.slice(0, 512) : '<non-string>';
  }
  return out;
}

// The success body in the configured shape (see --shape).
function shapeBody(opts, mock, form, now) {
  const life = opts.lifetime;
  if (opts.shape === 'raw') return { ...mock, expires_in: life };
  if (opts.shape === 'v2') {
    return { token_type: 'Bearer', expires_in: life, ext_expires_in: life,
      access_token: mock.access_token };
  }
  return { token_type: 'Bearer', expires_in: String(life), ext_expires_in: String(life),
    expires_on: String(now + life), not_before: String(now),
    resource: typeof form.resource === 'string' ? form.resource : '',
    access_token: mock.access_token };
}

const MAX_RECORDS = 10000; // a bound on what /_stats keeps

function makeStats() {
  return { token_requests: {}, refused: 0, issued: [], refusals: [] };
}

function installHooks(server, opts, stats) {
  const service = server.service;
  service.on('beforeTokenSigning', (token, req) => {
    token.payload.exp = token.payload.iat + opts.lifetime;
    const body = req.body || {};
    // An Entra-like audience: v1 sends resource=, v2 sends scope=<resource>/.default.
    if (typeof body.resource === 'string') token.payload.aud = body.resource;
    else if (typeof body.scope === 'string') token.payload.aud = body.scope.replace(/\/\.default$/, '');
    if (typeof body.client_id === 'string') token.payload.appid = body.client_id;
    // Playing a Kubernetes service account issuer for workload identity federation.
    if (typeof body.subject === 'string') token.payload.sub = body.subject;
  });
  service.on('beforeResponse', (resp, req) => {
    const body = req.body || {};
    const grant = typeof body.grant_type === 'string' ? body.grant_type : '<none>';
    stats.token_requests[grant] = (stats.token_requests[grant] || 0) + 1;
    const at = Date.now() / 1000;
    if (opts.secret !== null && body.client_secret !== opts.secret) {
      stats.refused += 1;
      if (stats.refusals.length < MAX_RECORDS) stats.refusals.push({ at, form: formSummary(body) });
      resp.statusCode = 401;
      resp.body = { error: 'invalid_client', error_description: 'Client authentication failed.' };
      return;
    }
    resp.body = shapeBody(opts, resp.body, body, Math.floor(at));
    if (stats.issued.length < MAX_RECORDS)
      stats.issued.push({ at, token: resp.body.access_token, form: formSummary(body) });
  });
  service.requestHandler.get('/_stats', (_req, res) => res.json(stats));
}

async function main() {
  const { OAuth2Server } = loadMock();
  const opts = parseArgs(process.argv.slice(2));
  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  const stats = makeStats();
  installHooks(server, opts, stats);
  await server.start(opts.port, '127.0.0.1');
  process.stdout.write(JSON.stringify({ listening: server.address().port, pid: process.pid }) + '\n');
  const stop = () => {
    server.stop().then(() => process.exit(0), () => process.exit(1));
    setTimeout(() => process.exit(1), 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write(`oauth3p: ${e.stack || e}\n`);
  process.exit(1);
});

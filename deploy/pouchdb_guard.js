'use strict';
// Preloaded into pouchdb-server (node --require): only its server admin (Gleaner)
// may use it, like CouchDB's require_valid_user with admins only.
//
// express-pouchdb 4.2's own checks have holes once the admin party ends: POST
// /<db>/_find answers anyone, and a non-admin's PUT /<new db> or PUT
// /<db>/_security crashes the whole process (a security plugin promise is used as
// a database). So one middleware, right after the session is known, answers 401 to
// anyone but a server admin, except the welcome document, the login route and
// Fauxton's static files.
const crypto = require('crypto');
const Module = require('module');

const OPEN = /^\/(_session\/?|_utils(\/.*)?)?$/;

function adminsOnly(req, res, next) {
  const ctx = req.couchSession && req.couchSession.userCtx;
  if (ctx && Array.isArray(ctx.roles) && ctx.roles.indexOf('_admin') !== -1) {
    return next();
  }
  if ((req.method === 'GET' || req.method === 'HEAD') && OPEN.test(req.path)) {
    return next();
  }
  if (req.path === '/_session' || req.path === '/_session/') {
    return next();
  }
  res.status(401).set('Content-Type', 'application/json');
  res.send(JSON.stringify({ error: 'unauthorized', reason: 'Authentication required.' }) + '\n');
}

// Checking a Basic login costs pouchdb-auth ~6 ms (pure-JS PBKDF2 and three reads of
// _users); Gleaner sends the same login on every request. A verified login's session
// is kept for a minute, by a digest of the header (admins change only at a restart).
const SESSION_TTL_MS = 60 * 1000;
const sessions = new Map();

function cachedSessions(buildSession) {
  return function (req, res, next) {
    const header = req.headers.authorization;
    if (!header || !header.startsWith('Basic ') || (req.headers.cookie || '').includes('AuthSession')) {
      return buildSession(req, res, next);
    }
    const key = crypto.createHash('sha256').update(header).digest('hex');
    const hit = sessions.get(key);
    if (hit && Date.now() - hit.at < SESSION_TTL_MS) {
      req.couchSession = JSON.parse(hit.session);
      return next();
    }
    return buildSession(req, res, function (err) {
      const session = req.couchSession;
      if (!err && session && session.info && session.info.authenticated) {
        if (sessions.size > 1000) sessions.clear();
        sessions.set(key, { at: Date.now(), session: JSON.stringify(session) });
      }
      next(err);
    });
  };
}

function withCachedSessions(register) {
  return function (app) {
    const use = app.use;
    app.use = function (fn) {
      if (typeof fn === 'function' && String(fn).includes('buildBasicAuthSession')) {
        return use.call(app, cachedSessions(fn));
      }
      return use.apply(app, arguments);
    };
    try {
      return register(app);
    } finally {
      app.use = use;
    }
  };
}

const load = Module._load;
Module._load = function (request, parent, isMain) {
  const exported = load.apply(this, arguments);
  const fromExpressPouchDB = parent && /express-pouchdb[\\/]lib[\\/]index\.js$/.test(parent.filename || '');
  if (!fromExpressPouchDB || typeof exported !== 'function') {
    return exported;
  }
  if (request === './routes/authentication') {
    return withCachedSessions(exported);
  }
  if (request !== './routes/authorization') {
    return exported;
  }
  return function (app) {
    app.use(adminsOnly); // routes/authentication (loaded just before) has set req.couchSession
    return exported(app);
  };
};

// The console's client of tokend's REST API (/v1/). The admin token lives in
// sessionStorage: it survives a reload of the tab, not the tab itself.

const KEY = 'tokend.adminToken';

export const session = {
  get token() { return sessionStorage.getItem(KEY); },
  set token(t) { sessionStorage.setItem(KEY, t); },
  clear() { sessionStorage.removeItem(KEY); },
};

// ApiError is a failed call: status is the HTTP status (0 when tokend could
// not be reached) and violations the google.rpc.BadRequest field violations.
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `tokend answered HTTP ${status}`);
    this.status = status;
    this.violations = (body?.details || [])
      .filter((d) => String(d['@type']).endsWith('google.rpc.BadRequest'))
      .flatMap((d) => d.fieldViolations || []);
  }
}

let onSignedOut = () => {};

// onUnauthenticated registers what to do when the session's token stops
// being accepted (deleted, regenerated or expired while signed in).
export function onUnauthenticated(f) { onSignedOut = f; }

// call sends one request and returns the decoded JSON answer, or throws an
// ApiError. Paths are relative to the page, so a console served under a
// path prefix still reaches its own API.
export async function call(method, path, body, token = session.token) {
  const headers = { Authorization: 'Bearer ' + token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { message: 'tokend cannot be reached. Check the connection and try again.' });
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: keep the status */ }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && token === session.token) onSignedOut(err);
    throw err;
  }
  return data;
}

// listAll reads every page of a listing: path with params, whose items are
// in the field named items of each page. A page may be cut short by the
// server's size budget, so only an empty nextPageToken ends the listing.
async function listAll(path, params, items) {
  const out = [];
  let pageToken = '';
  do {
    const q = new URLSearchParams({ page_size: '1000', ...params });
    if (pageToken) q.set('page_token', pageToken);
    const page = await call('GET', path + '?' + q);
    out.push(...(page[items] || []));
    pageToken = page.nextPageToken || '';
  } while (pageToken);
  return out;
}

// listTokens returns every token of a kind.
export const listTokens = (kind) => listAll('v1/tokens', { kind }, 'tokens');

export const getToken = (id) => call('GET', 'v1/tokens/' + encodeURIComponent(id)).then((r) => r.token);
export const createToken = (token) => call('POST', 'v1/tokens', token);
export const deleteToken = (id) => call('DELETE', 'v1/tokens/' + encodeURIComponent(id));
export const regenerateToken = (id) => call('POST', 'v1/tokens/' + encodeURIComponent(id) + ':regenerate', {});

// updateToken sends only the changed fields, naming them in update_mask.
export function updateToken(id, changes, mask) {
  const q = new URLSearchParams({ update_mask: mask.join(',') });
  return call('PATCH', 'v1/tokens/' + encodeURIComponent(id) + '?' + q, changes).then((r) => r.token);
}

// listActions returns the whole catalog of a kind.
export const listActions = (kind) =>
  listAll('v1/actions', kind === 'TOKEN_KIND_ADMIN' ? { kind } : {}, 'actions');

// checkToken tells whether token may sign in: it must be able to list tokens.
export const checkToken = (token) => call('GET', 'v1/tokens?page_size=1', undefined, token);

// The console's entry point: sign-in, routing between the pages, and the
// banner that shows a new secret once.
//
// Routes (in the URL fragment, so the server serves one page):
//   #/            API tokens        #/admin        admin tokens
//   #/new         new API token     #/admin/new    new admin token
//   #/tokens/ID   edit a token

import { session, checkToken, onUnauthenticated } from './api.js';
import { h, icon, announce } from './dom.js';
import { API, ADMIN } from './format.js';
import { renderList } from './list.js';
import { renderForm } from './form.js';

const main = document.getElementById('main');
const bannerBox = document.getElementById('banner');
const signOutButton = document.getElementById('sign-out');

let lifespans = [];
// The secret to show, held in memory only: never in storage or in the URL.
// It survives one navigation (from the creation form to the new token's
// page) and is dropped at the next one, or by a reload.
let secret = null;
let keepSecret = false;
let firstRoute = true;

async function boot() {
  try {
    const res = await fetch('console/config.json', { cache: 'no-store' });
    lifespans = (await res.json()).lifespans || [];
  } catch {
    lifespans = [];
  }
  onUnauthenticated((err) => signOut(signInMessage(err, true)));
  signOutButton.addEventListener('click', () => signOut());
  window.addEventListener('hashchange', route);
  route();
}

function route() {
  if (!keepSecret) secret = null;
  keepSecret = false;
  drawBanner();
  if (!session.token) {
    showSignIn();
    return;
  }
  signOutButton.hidden = false;
  const path = location.hash.replace(/^#/, '') || '/';
  const edit = path.match(/^\/tokens\/([^/]+)$/);
  let done;
  if (path === '/') done = renderList(main, API, showError);
  else if (path === '/admin') done = renderList(main, ADMIN, showError);
  else if (path === '/new' || path === '/admin/new' || edit) {
    done = renderForm(main, {
      kind: path === '/admin/new' ? ADMIN : API,
      id: edit && decodeURIComponent(edit[1]),
      lifespans,
      showError,
      onCreated(token, value) {
        secret = { value, how: 'created' };
        keepSecret = true;
        location.hash = '#/tokens/' + encodeURIComponent(token.id);
      },
      onSecret(value, how) {
        secret = { value, how };
        drawBanner();
        announce('New token generated. Copy it from the top of the page: it will not be shown again.');
      },
    });
  } else {
    location.replace('#/');
    return;
  }
  document.title = 'API Tokens · tokend';
  // After a navigation, move focus to the new page (or to the new secret)
  // so that keyboard and screen reader users start from its top.
  if (firstRoute) {
    firstRoute = false;
    return;
  }
  const target = bannerBox.querySelector('h2') || main.querySelector('h1');
  if (target) {
    target.focus();
    return;
  }
  // The page is still loading: hold focus on main until its heading comes,
  // unless the user has moved on by then.
  main.focus();
  Promise.resolve(done).then(() => {
    if (document.activeElement === main) main.querySelector('h1')?.focus();
  });
}

function drawBanner() {
  if (!secret) {
    bannerBox.replaceChildren();
    return;
  }
  const input = h('input', {
    id: 'new-secret', type: 'text', readonly: true, value: secret.value,
    spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'new-secret-warning',
  });
  const copy = h('button', { type: 'button', class: 'primary', onclick: () => copySecret(input, copy) }, icon('copy'), 'Copy');
  bannerBox.replaceChildren(h('section', { class: 'secret-banner', 'aria-labelledby': 'new-secret-title' },
    h('h2', { id: 'new-secret-title', tabindex: '-1' }, icon('warning'),
      secret.how === 'created' ? 'Your new token' : 'Your regenerated token'),
    h('p', { id: 'new-secret-warning' }, 'Make sure to copy this token now: it will not be shown again.'),
    h('div', { class: 'secret-row' },
      h('label', { for: 'new-secret', class: 'visually-hidden' }, 'New token'), input, copy)));
}

async function copySecret(input, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch {
    // No clipboard API (plain HTTP on another host) or no permission: fall
    // back to copying the selected text.
    input.select();
    ok = document.execCommand('copy');
  }
  const label = ok ? 'Copied' : 'Select the token and copy it';
  button.replaceChildren(icon('copy'), label);
  announce(ok ? 'Token copied to the clipboard.' : 'Copying failed: the token is selected, copy it with the keyboard.');
  if (ok) setTimeout(() => button.replaceChildren(icon('copy'), 'Copy'), 2000);
}

// showError shows an error that belongs to no field: in box when given,
// otherwise at the top of the page.
function showError(err, box) {
  const msg = err.status === 403
    ? 'Your admin token may not do this: ' + err.message
    : err.status === 0 ? err.message : 'tokend refused the request: ' + err.message;
  if (!box) {
    box = main.querySelector(':scope > .alert') || h('div', { class: 'alert', role: 'alert' });
    main.prepend(box);
  }
  box.replaceChildren(icon('warning'), h('span', {}, msg));
  box.hidden = false;
}

function signInMessage(err, during) {
  if (err.status === 0) return err.message;
  if (err.status === 401) {
    if (/expired/i.test(err.message)) return 'This admin token has expired. Sign in with another one.';
    return during
      ? 'Your admin token is no longer accepted (deleted or regenerated?). Sign in again.'
      : 'This token was not accepted: it is not a valid admin token of this tokend.';
  }
  if (err.status === 403) return 'This admin token may not list tokens (it lacks tokend.token.find).';
  return 'Signing in failed: ' + err.message;
}

function signOut(message) {
  session.clear();
  secret = null;
  drawBanner();
  showSignIn(message);
}

function showSignIn(message) {
  signOutButton.hidden = true;
  const input = h('input', {
    id: 'admin-token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
    'aria-describedby': 'signin-error', 'aria-invalid': message ? 'true' : null,
  });
  const error = h('p', { id: 'signin-error', class: 'field-error', role: 'alert' }, message || '');
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { novalidate: true, onsubmit: submit },
    h('label', { for: 'admin-token' }, 'Admin token'), input, error, button);
  main.replaceChildren(h('section', { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to tokend'),
    h('p', { class: 'intro' }, 'Paste an admin token. It is kept in this browser tab only, until you sign out or close the tab.'),
    form));
  document.title = 'Sign in · tokend';
  input.focus();

  async function submit(e) {
    e.preventDefault();
    const token = input.value.trim();
    error.textContent = '';
    if (!token) {
      error.textContent = 'Paste an admin token to sign in.';
      input.setAttribute('aria-invalid', 'true');
      return;
    }
    button.disabled = true;
    try {
      await checkToken(token);
    } catch (err) {
      button.disabled = false;
      error.textContent = signInMessage(err, false);
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    session.token = token;
    firstRoute = true;
    route();
    main.querySelector('h1')?.focus();
  }
}

boot();

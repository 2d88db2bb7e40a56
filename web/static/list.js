// The "API Tokens" page: the table of tokens of one kind, with search, sort,
// edit and delete.

import { listTokens, deleteToken } from './api.js';
import { h, icon, announce, confirm } from './dom.js';
import { ADMIN, SOON_DAYS, typeLabel, formatDate, formatDateTime, expiryText, expiresSoon, isExpired } from './format.js';

// The sort order is kept while the tab is open: name A→Z by default.
const sort = { key: 'name', dir: 'ascending' };

export async function renderList(main, kind, showError) {
  const admin = kind === ADMIN;
  const search = h('input', {
    type: 'search', id: 'search', placeholder: 'Search by name or description',
    autocomplete: 'off', oninput: () => draw(),
  });
  const soon = h('input', { type: 'checkbox', id: 'expiring-soon', onchange: () => draw() });
  const count = h('p', { class: 'count', role: 'status' });
  const tbody = h('tbody');
  const sortButton = (key, label) => h('button', { type: 'button', class: 'sort', onclick: () => toggleSort(key) }, label);
  const nameTh = h('th', { scope: 'col' }, sortButton('name', 'Name'));
  const createdTh = h('th', { scope: 'col' }, sortButton('created', 'Created'));
  const table = h('table', {},
    h('caption', { class: 'visually-hidden' }, admin ? 'Admin tokens' : 'API tokens'),
    h('thead', {}, h('tr', {},
      nameTh,
      h('th', { scope: 'col' }, 'Description'),
      h('th', { scope: 'col' }, 'Type'),
      createdTh,
      h('th', { scope: 'col' }, 'Last used'),
      h('th', { scope: 'col' }, 'Expires'),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    tbody);
  const body = h('div', { class: 'card table-wrap', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading tokens…'));

  main.replaceChildren(
    h('div', { class: 'page-header' },
      h('div', {},
        h('h1', { tabindex: '-1' }, 'API Tokens'),
        h('p', { class: 'subtitle' }, admin
          ? 'Admin tokens sign in to this console and call tokend’s own API.'
          : 'Tokens that backends check with tokend before serving a request.')),
      h('a', { class: 'button primary', href: admin ? '#/admin/new' : '#/new' },
        icon('plus'), admin ? 'Create new admin token' : 'Create new API Token')),
    h('nav', { class: 'tabs', 'aria-label': 'Token kind' },
      h('a', { href: '#/', 'aria-current': admin ? null : 'page' }, 'API tokens'),
      h('a', { href: '#/admin', 'aria-current': admin ? 'page' : null }, 'Admin tokens')),
    h('div', { class: 'toolbar' },
      h('label', { for: 'search', class: 'visually-hidden' }, 'Search tokens'), search,
      h('label', { class: 'check' }, soon, `Expiring within ${SOON_DAYS} days`), count),
    body);

  let tokens;
  try {
    tokens = await listTokens(kind);
  } catch (err) {
    body.removeAttribute('aria-busy');
    body.replaceChildren(h('p', { class: 'empty', role: 'alert' }, 'The tokens could not be loaded: ' + err.message));
    return;
  }
  body.removeAttribute('aria-busy');
  body.replaceChildren(table);
  draw();

  function toggleSort(key) {
    if (sort.key === key) sort.dir = sort.dir === 'ascending' ? 'descending' : 'ascending';
    else Object.assign(sort, { key, dir: key === 'created' ? 'descending' : 'ascending' });
    draw();
  }

  function draw() {
    nameTh.setAttribute('aria-sort', sort.key === 'name' ? sort.dir : 'none');
    createdTh.setAttribute('aria-sort', sort.key === 'created' ? sort.dir : 'none');
    const q = search.value.trim().toLowerCase();
    const shown = tokens
      .filter((t) => !q || t.name.toLowerCase().includes(q) || t.description.toLowerCase().includes(q))
      .filter((t) => !soon.checked || expiresSoon(t))
      .sort(compare);
    tbody.replaceChildren(...shown.map(row));
    const noun = admin ? 'admin token' : 'API token';
    const total = `${tokens.length} ${noun}${tokens.length === 1 ? '' : 's'}`;
    const filtered = q || soon.checked;
    count.textContent = filtered ? `${shown.length} of ${total}` : total;
    if (!shown.length) {
      tbody.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' },
        filtered ? 'No token matches these filters.' : `No ${noun}s yet.`)));
    }
  }

  function compare(a, b) {
    const r = sort.key === 'name'
      ? a.name.localeCompare(b.name, undefined, { sensitivity: 'base' })
      : compareText(timeKey(a.createTime), timeKey(b.createTime));
    return sort.dir === 'ascending' ? r : -r;
  }

  function row(t) {
    const expiry = expiryText(t);
    return h('tr', { 'data-id': t.id },
      h('th', { scope: 'row' }, t.name),
      h('td', { class: t.description ? 'description' : 'description none', 'data-label': 'Description' }, t.description || '—'),
      h('td', { 'data-label': 'Type' }, h('span', { class: 'badge' }, typeLabel(t.type))),
      h('td', { 'data-label': 'Created' }, h('time', { datetime: t.createTime, title: formatDateTime(t.createTime) }, formatDate(t.createTime))),
      h('td', { 'data-label': 'Last used' }, t.lastUsedTime
        ? h('time', { datetime: t.lastUsedTime, title: formatDateTime(t.lastUsedTime) }, formatDate(t.lastUsedTime))
        : 'Never'),
      h('td', { 'data-label': 'Expires', class: 'expiry' }, isExpired(t)
        ? h('span', { class: 'badge expired', title: 'Expired on ' + formatDateTime(t.expireTime) }, expiry)
        : t.expireTime
          ? h('time', { datetime: t.expireTime, title: formatDateTime(t.expireTime), class: expiresSoon(t) ? 'badge expiring' : null }, expiry)
          : expiry),
      h('td', { class: 'row-actions' },
        h('a', { class: 'button icon-button', href: '#/tokens/' + encodeURIComponent(t.id), 'aria-label': 'Edit ' + t.name, title: 'Edit' }, icon('pencil')),
        h('button', { type: 'button', class: 'icon-button delete', 'aria-label': 'Delete ' + t.name, title: 'Delete', onclick: () => remove(t) }, icon('trash'))));
  }

  async function remove(t) {
    const ok = await confirm({
      title: 'Delete this token?',
      text: `“${t.name}” will be deleted and its secret stops working at once. This cannot be undone.`,
      confirmLabel: 'Delete',
    });
    if (!ok) return;
    try {
      await deleteToken(t.id);
    } catch (err) {
      if (err.status !== 404) { showError(err); return; }
    }
    tokens = tokens.filter((x) => x.id !== t.id);
    draw();
    // The row and its button are gone: put focus on the search box, at the
    // top of the list, rather than let it fall to the page's body.
    search.focus();
    announce(`Token “${t.name}” deleted.`);
  }
}

// timeKey makes an RFC 3339 UTC time from the API sortable as text to the
// nanosecond (Date.parse stops at the millisecond, and tokens created in
// the same millisecond would then keep an arbitrary order): the fraction is
// padded to nine digits.
function timeKey(t) {
  const [whole, fraction = ''] = t.replace('Z', '').split('.');
  return whole + '.' + fraction.padEnd(9, '0');
}

const compareText = (x, y) => (x < y ? -1 : x > y ? 1 : 0);

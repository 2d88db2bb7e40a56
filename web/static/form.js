// The edition form: create a token, or edit and regenerate one.

import { session, getToken, createToken, updateToken, regenerateToken, listActions } from './api.js';
import { h, icon, announce, confirm } from './dom.js';
import { permissionPicker } from './permissions.js';
import { ADMIN, TYPES, CUSTOM, durationLabel, formatDate, formatDateTime, isExpired, typeLabel } from './format.js';

const LABELS = { name: 'Name', description: 'Description', lifespan: 'Token duration', type: 'Token type', permissions: 'Permissions' };

// renderForm shows the form for a new token of kind (id empty) or for the
// token id. onSecret receives a secret to show once; showError an error that
// belongs to no field.
export async function renderForm(main, { kind, id, lifespans, onCreated, onSecret, showError }) {
  let token = null;
  if (id) {
    main.replaceChildren(h('p', { class: 'loading' }, 'Loading token…'));
    try {
      token = await getToken(id);
    } catch (err) {
      if (err.status === 401) return; // signed out: the sign-in form is showing
      main.replaceChildren(h('p', { class: 'empty' }, err.status === 404 ? 'This token does not exist (any more).' : 'The token could not be loaded: ' + err.message),
        h('p', { class: 'empty' }, h('a', { href: '#/' }, 'Back to the tokens')));
      return;
    }
    kind = token.kind;
  }
  const admin = kind === ADMIN;
  const listHref = admin ? '#/admin' : '#/';

  // Fields. Each has an error paragraph that describes it when set.
  const fields = {};
  const field = (key, control, hint) => {
    control.id = 'f-' + key;
    const error = h('p', { class: 'field-error', id: `f-${key}-error` });
    control.setAttribute('aria-describedby', [hint && `f-${key}-hint`, error.id].filter(Boolean).join(' '));
    fields[key] = { control, error };
    return h('div', { class: 'field' },
      h('label', { for: control.id }, LABELS[key]), control,
      hint && h('p', { class: 'hint', id: `f-${key}-hint` }, hint), error);
  };

  const name = h('input', { type: 'text', required: true, maxlength: 100, autocomplete: 'off', value: token?.name || '' });
  const description = h('textarea', { maxlength: 1000, value: token?.description || '' });
  const lifespan = h('select', {}, lifespanOptions(lifespans, token));
  const type = h('select', {}, TYPES.map(([v, label]) => h('option', { value: v }, label)));
  type.value = token?.type || 'TOKEN_TYPE_READ_ONLY';

  const picker = permissionPicker(() => listActions(kind), token?.permissions || []);
  const permissions = picker.element;
  fields.permissions = { control: picker.focusTarget, error: picker.error };
  const syncType = () => {
    permissions.hidden = type.value !== CUSTOM;
    if (!permissions.hidden) picker.load();
  };
  type.addEventListener('change', syncType);
  syncType();

  const status = h('p', { class: 'status', role: 'status' });
  const formError = h('div', { class: 'alert', role: 'alert', hidden: true });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const form = h('form', { class: 'card form', novalidate: true, 'aria-labelledby': 'form-title', onsubmit: submit },
    formError,
    h('h2', {}, 'Details'),
    h('div', { class: 'grid' },
      field('name', name, 'Unique, at most 100 characters.'),
      field('description', description, 'Optional: what the token is for, who uses it.'),
      field('lifespan', lifespan, durationHint(token)),
      field('type', type, typeHint(admin))),
    permissions,
    h('div', { class: 'form-actions' }, save, h('a', { class: 'button', href: listHref }, 'Cancel'), status));

  const title = h('h1', { id: 'form-title', tabindex: '-1' }, token ? token.name : admin ? 'Create new admin token' : 'Create new API Token');
  const meta = h('dl', { class: 'meta' });
  const regenerate = token && h('button', { type: 'button', onclick: regen }, icon('refresh'), 'Regenerate');
  // drawMeta shows what the server says of the token: it changes with
  // every save and regeneration.
  const drawMeta = () => {
    if (!token) return;
    meta.replaceChildren(
      metaItem('Kind', admin ? 'Admin token' : 'API token'),
      metaItem('Secret', token.secretHint),
      metaItem('Created', formatDateTime(token.createTime)),
      metaItem('Last used', token.lastUsedTime ? formatDateTime(token.lastUsedTime) : 'Never'),
      metaItem('Expires', !token.expireTime ? 'Unlimited' : (isExpired(token) ? 'Expired on ' : '') + formatDateTime(token.expireTime)));
    form.querySelector('#f-lifespan-hint').textContent = durationHint(token);
  };
  drawMeta();

  main.replaceChildren(
    h('div', { class: 'page-header' },
      h('div', {},
        h('a', { class: 'back', href: listHref }, icon('back'), 'Back'),
        title,
        token ? meta : h('p', { class: 'subtitle' }, admin
          ? 'An admin token signs in to this console and calls tokend’s API.'
          : 'Backends ask tokend whether the tokens they are shown are valid and allowed.')),
      regenerate && h('div', { class: 'actions' }, regenerate)),
    form);

  async function submit(e) {
    e.preventDefault();
    clearErrors();
    status.textContent = '';
    const values = {
      name: name.value.trim(),
      description: description.value.trim(),
      type: type.value,
      lifespan: lifespan.value,
      permissions: type.value === CUSTOM ? picker.selected() : [],
    };
    if (!values.name) return showFieldErrors([{ field: 'token.name', description: 'is required' }]);
    if (values.type === CUSTOM && !values.permissions.length) {
      return showFieldErrors([{ field: 'token.permissions', description: 'choose at least one action' }]);
    }
    save.disabled = true;
    try {
      if (!token) {
        const body = { name: values.name, description: values.description, kind, type: values.type };
        if (values.lifespan) body.lifespan = values.lifespan;
        if (values.type === CUSTOM) body.permissions = values.permissions;
        const res = await createToken(body);
        onCreated(res.token, res.secret);
        return;
      }
      const { changes, mask } = diff(token, values);
      if (!mask.length) {
        status.textContent = 'Nothing to save: no field changed.';
        return;
      }
      token = await updateToken(token.id, changes, mask);
      title.textContent = token.name;
      name.value = token.name;
      description.value = token.description;
      picker.reset(token.permissions);
      drawMeta();
      status.textContent = 'Changes saved.';
    } catch (err) {
      if (err.status === 401) return;
      const v = err.violations.length ? err.violations
        : err.status === 409 ? [{ field: 'token.name', description: err.message }] : [];
      if (!showFieldErrors(v)) showError(err, formError);
    } finally {
      save.disabled = false;
    }
  }

  async function regen() {
    const ok = await confirm({
      title: 'Regenerate this token?',
      text: `“${token.name}” gets a new secret and the current one stops working at once: backends using it must switch to the new one.`,
      confirmLabel: 'Regenerate',
    });
    if (!ok) return;
    // Regenerating the admin token this console is signed in with: keep
    // the session alive with the new secret.
    const own = session.token && secretHint(session.token) === token.secretHint;
    try {
      const res = await regenerateToken(token.id);
      if (own) session.token = res.secret;
      token = res.token;
      drawMeta();
      onSecret(res.secret, 'regenerated');
    } catch (err) {
      if (err.status !== 401) showError(err, formError);
    }
  }

  function clearErrors() {
    formError.hidden = true;
    for (const { control, error } of Object.values(fields)) {
      error.textContent = '';
      control.removeAttribute('aria-invalid');
    }
  }

  // showFieldErrors puts each violation next to its field, focuses the
  // first, and returns false when none belongs to a field of the form.
  function showFieldErrors(violations) {
    let first = null;
    for (const v of violations) {
      const key = String(v.field).replace(/^token\./, '').replace(/\[\d+\]$/, '');
      const f = fields[key];
      if (!f) continue;
      const msg = sentence(LABELS[key], v.description);
      f.error.textContent = f.error.textContent ? f.error.textContent + ' ' + msg : msg;
      f.control.setAttribute('aria-invalid', 'true');
      first ||= f.control;
    }
    if (!first) return false;
    first.focus();
    announce('The token was not saved: ' + violations.map((v) => v.description).join('; '));
    return true;
  }
}

// secretHint is what the server shows of a secret: its prefix and last four
// characters.
function secretHint(secret) {
  return secret.slice(0, secret.lastIndexOf('_') + 1) + '…' + secret.slice(-4);
}

function metaItem(term, value) {
  return h('div', {}, h('dt', {}, term), h('dd', {}, value));
}

// sentence turns a server description into a message next to its field:
// "is required" → "Name is required."
function sentence(label, desc) {
  desc = String(desc).trim();
  const s = /^(is|are|must|may|should|cannot) /.test(desc) ? `${label} ${desc}` : desc.charAt(0).toUpperCase() + desc.slice(1);
  return /[.!?)]$/.test(s) ? s : s + '.';
}

function lifespanOptions(lifespans, token) {
  const options = lifespans.map((l) => h('option', { value: l.duration }, l.label));
  const current = token ? token.lifespan || '' : lifespans[0]?.duration || '';
  if (current && !lifespans.some((l) => l.duration === current)) {
    // A preset the server no longer offers: show it so the form is honest.
    options.push(h('option', { value: current }, durationLabel(current) + ' (no longer offered)'));
  }
  options.push(h('option', { value: '' }, 'Unlimited'));
  for (const o of options) o.selected = o.value === current;
  return options;
}

function durationHint(token) {
  if (!token) return 'The token stops working after this long.';
  if (!token.expireTime) return 'Never expires. Changing the duration starts it from now.';
  const when = formatDate(token.expireTime);
  return (isExpired(token) ? `Expired on ${when}.` : `Expires on ${when}.`) + ' Changing the duration starts it again from now.';
}

function typeHint(admin) {
  const what = admin ? 'tokend’s admin actions' : 'the registered actions';
  return `${typeLabel('TOKEN_TYPE_READ_ONLY')}: find and findOne only. Full access: all of ${what}. Custom: the actions you choose.`;
}

// diff returns the fields of values that differ from token, as an
// UpdateToken body and its update mask.
function diff(token, values) {
  const changes = {};
  const mask = [];
  const set = (k, v) => { mask.push(k); if (v !== undefined) changes[k] = v; };
  if (values.name !== token.name) set('name', values.name);
  if (values.description !== token.description) set('description', values.description);
  if (values.type !== token.type) set('type', values.type);
  if (values.lifespan !== (token.lifespan || '')) set('lifespan', values.lifespan || undefined);
  const before = [...(token.permissions || [])].sort().join('\n');
  if (values.type === CUSTOM && values.permissions.join('\n') !== before) set('permissions', values.permissions);
  return { changes, mask };
}

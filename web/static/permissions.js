// The permission picker of custom tokens: the action catalog grouped by
// subject (content type), each group a disclosure with a checkbox per verb
// and a select-all checkbox.

import { h, icon } from './dom.js';

// permissionPicker returns the picker's fieldset and its controls. load
// fetches the catalog with loader the first time it is called; selected
// lists the checked action ids, sorted.
export function permissionPicker(loader, initial) {
  let chosen = new Set(initial);
  let loading = null;
  let catalog = null;
  const groupsBox = h('div', { class: 'perm-groups' });
  const error = h('p', { class: 'field-error', id: 'f-permissions-error' });
  const element = h('fieldset', { class: 'permissions', id: 'f-permissions', tabindex: '-1', 'aria-describedby': 'f-permissions-error' },
    h('legend', {}, 'Permissions'),
    h('p', { class: 'hint' }, 'Choose the actions this token may perform. Open a content type to see its actions.'),
    error, groupsBox);

  function load() {
    loading ||= loader().then(draw, (err) => {
      loading = null;
      groupsBox.replaceChildren(h('p', { class: 'hint' }, 'The actions could not be loaded: ' + err.message));
    });
    if (!groupsBox.childElementCount) groupsBox.append(h('p', { class: 'hint' }, 'Loading actions…'));
    return loading;
  }

  function draw(actions) {
    catalog = actions;
    const bySubject = new Map();
    for (const a of actions) {
      if (!bySubject.has(a.subject)) bySubject.set(a.subject, []);
      bySubject.get(a.subject).push(a);
    }
    // Keep a permission the catalog no longer lists, so saving does not
    // silently drop it.
    for (const id of chosen) {
      if (actions.some((a) => a.id === id)) continue;
      const i = id.lastIndexOf('.');
      const subject = id.slice(0, i);
      if (!bySubject.has(subject)) bySubject.set(subject, []);
      bySubject.get(subject).push({ id, subject, verb: id.slice(i + 1), description: '' });
    }
    if (!bySubject.size) {
      groupsBox.replaceChildren(h('p', { class: 'hint' },
        'No action is registered yet. Backends register theirs with POST /v1/actions:register.'));
      return;
    }
    const subjects = [...bySubject.keys()].sort();
    groupsBox.replaceChildren(...subjects.map((s, i) => group(s, bySubject.get(s), i, subjects.length === 1)));
  }

  function group(subject, actions, index, only) {
    const listId = 'perm-group-' + index;
    const boxes = actions.map((a) => h('input', {
      type: 'checkbox', value: a.id, checked: chosen.has(a.id),
      'aria-describedby': a.description ? `${listId}-${a.verb}-desc` : null, onchange: sync,
    }));
    const all = h('input', { type: 'checkbox', onchange: () => { boxes.forEach((b) => { b.checked = all.checked; }); sync(); } });
    const count = h('span', { class: 'selected' });
    const expanded = only || actions.some((a) => chosen.has(a.id));
    const list = h('div', { class: 'perm-list', id: listId, role: 'group', 'aria-label': subject + ' actions', hidden: !expanded },
      actions.map((a, i) => h('label', { class: 'check' }, boxes[i], h('span', {}, a.verb,
        a.description && h('span', { class: 'action-desc', id: `${listId}-${a.verb}-desc` }, a.description)))));
    const toggle = h('button', {
      type: 'button', class: 'disclosure', 'aria-expanded': String(expanded), 'aria-controls': listId,
      onclick: () => {
        const open = toggle.getAttribute('aria-expanded') !== 'true';
        toggle.setAttribute('aria-expanded', String(open));
        list.hidden = !open;
      },
    }, icon('chevron'), h('span', { class: 'disclosure-text' }, h('span', { class: 'subject mono' }, subject), count));

    function sync() {
      for (const b of boxes) {
        if (b.checked) chosen.add(b.value); else chosen.delete(b.value);
      }
      const n = boxes.filter((b) => b.checked).length;
      all.checked = n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
      count.textContent = `${n} of ${boxes.length} selected`;
    }
    sync();
    return h('div', { class: 'perm-group', 'data-subject': subject },
      h('div', { class: 'perm-head' }, toggle,
        h('label', { class: 'check select-all' }, all, 'Select all', h('span', { class: 'visually-hidden' }, ' actions of ' + subject))),
      list);
  }

  return {
    element,
    error,
    focusTarget: element,
    load,
    selected: () => [...chosen].sort(),
    reset(perms) {
      chosen = new Set(perms);
      if (catalog) draw(catalog);
    },
  };
}

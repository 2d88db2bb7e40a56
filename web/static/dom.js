// Small DOM helpers. Text always goes in as text nodes, never as HTML, so a
// token name cannot inject markup.

const PROPS = new Set(['value', 'checked', 'indeterminate', 'disabled', 'hidden', 'selected']);

// h builds an element: h('button', {class: 'primary', onclick: f}, 'Save').
// Attributes whose value is null, undefined or false are left out.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// icon returns an inline SVG that uses a symbol of the page's sprite.
export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const use = document.createElementNS(ns, 'use');
  use.setAttribute('href', '#i-' + name);
  svg.append(use);
  return svg;
}

// announce reads msg out to screen readers through the page's live region.
export function announce(msg) {
  const region = document.getElementById('announcer');
  region.textContent = '';
  requestAnimationFrame(() => { region.textContent = msg; });
}

// confirm asks a question in the page's modal dialog and resolves to true
// when the user presses the confirm button. Focus goes into the dialog (to
// Cancel, the safe choice) and back to the control that opened it.
export function confirm({ title, text, confirmLabel }) {
  const dialog = document.getElementById('confirm-dialog');
  const opener = document.activeElement;
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = confirmLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    const onClick = (e) => {
      const button = e.target.closest('button');
      if (button) dialog.close(button.value);
    };
    dialog.addEventListener('click', onClick);
    dialog.addEventListener('close', () => {
      dialog.removeEventListener('click', onClick);
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'confirm');
    }, { once: true });
    dialog.showModal();
  });
}

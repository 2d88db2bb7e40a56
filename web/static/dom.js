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

// The question on screen, if any: its finish function.
let pending = null;

// confirm asks a question in the page's modal dialog and resolves to true
// when the user presses the confirm button. Focus goes into the dialog (to
// Cancel, the safe choice) and back to the control that opened it.
//
// A dialog's close event is delivered in a later task than the closing
// itself, so a question asked right after another one closed can meet the
// earlier close event: it is recognised by the dialog being open again, and
// ignored.
export function confirm({ title, text, confirmLabel }) {
  const dialog = document.getElementById('confirm-dialog');
  if (pending) pending(false);
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
    const onClose = () => {
      if (dialog.open) return; // the late close event of an earlier question
      if (opener && opener.isConnected) opener.focus();
      finish(dialog.returnValue === 'confirm');
    };
    const finish = (answer) => {
      dialog.removeEventListener('click', onClick);
      dialog.removeEventListener('close', onClose);
      pending = null;
      resolve(answer);
    };
    pending = finish;
    dialog.addEventListener('click', onClick);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
  });
}

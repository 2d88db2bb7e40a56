// How token fields read in the console.

export const API = 'TOKEN_KIND_API';
export const ADMIN = 'TOKEN_KIND_ADMIN';

export const TYPES = [
  ['TOKEN_TYPE_READ_ONLY', 'Read-only'],
  ['TOKEN_TYPE_FULL_ACCESS', 'Full access'],
  ['TOKEN_TYPE_CUSTOM', 'Custom'],
];
export const CUSTOM = 'TOKEN_TYPE_CUSTOM';

export function typeLabel(type) {
  return (TYPES.find(([v]) => v === type) || [, 'Read-only'])[1];
}

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export const formatDate = (ts) => dateFmt.format(new Date(ts));
export const formatDateTime = (ts) => dateTimeFmt.format(new Date(ts));

export function isExpired(token, now = Date.now()) {
  return !!token.expireTime && Date.parse(token.expireTime) <= now;
}

// durationLabel writes a protojson duration ("604800s") in the largest unit
// that divides it, as the server's presets are labelled: "7 days".
export function durationLabel(d) {
  const s = Math.round(parseFloat(d));
  for (const [size, unit] of [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']]) {
    if (s >= size && s % size === 0) {
      const n = s / size;
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }
  return d;
}

// expiryText says when a token's secret stops working.
export function expiryText(token) {
  if (!token.expireTime) return 'Unlimited';
  return isExpired(token) ? 'Expired' : formatDate(token.expireTime);
}

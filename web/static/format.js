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

// SOON_DAYS is how close an expiry must be for the console to highlight
// it and for the "Expiring soon" filter to show the token.
export const SOON_DAYS = 7;
const DAY = 86400 * 1000;

// daysLeft is the number of days, rounded up, until the token expires:
// 1 for "within a day". Infinity for a token that never expires.
function daysLeft(token, now = Date.now()) {
  if (!token.expireTime) return Infinity;
  return Math.max(0, Math.ceil((Date.parse(token.expireTime) - now) / DAY));
}

// expiresSoon says whether a token still works but expires within
// SOON_DAYS days.
export function expiresSoon(token, now = Date.now()) {
  return !isExpired(token, now) && daysLeft(token, now) <= SOON_DAYS;
}

// expiryText says when a token's secret stops working.
export function expiryText(token, now = Date.now()) {
  if (!token.expireTime) return 'Unlimited';
  if (isExpired(token, now)) return 'Expired';
  const n = daysLeft(token, now);
  return `Expires in ${n} day${n === 1 ? '' : 's'}`;
}

// What the page knows: the latest update of every slice, the history of the headline slices
// (all/all) as the page received it, and the latest alerts. No DOM here.

export const HEADLINE = ['nps', 'csat', 'ces', 'response_rate'];
export const SMALL_SAMPLE = 30; // fewer responses than this: the slice is marked
export const MAX_ALERTS = 50;
export const MAX_POINTS = 2000; // per trend line, the oldest points go first

export const METRIC_LABEL = {
  nps: 'NPS',
  csat: 'CSAT %',
  ces: 'CES',
  response_rate: 'Response rate %',
  frt: 'First response s',
  art: 'Resolution s',
  fcr: 'FCR %',
  transfer_rate: 'Transfer rate %',
};

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

// "5m" -> 300; an unknown form sorts last.
export function windowSeconds(name) {
  const m = /^(\d+)([smhdw])$/.exec(name);
  return m ? Number(m[1]) * UNIT_SECONDS[m[2]] : Number.MAX_SAFE_INTEGER;
}

export function sliceKey(u) {
  return `${u.metric}|${u.window}|${u.dimension}|${u.value}`;
}

export function createModel() {
  return {
    latest: new Map(), // sliceKey -> update
    history: new Map(), // `${metric}|${window}` (all/all) -> [[epoch s, score]]
    alerts: [], // newest first
    alertIds: new Set(),
    updates: 0,
  };
}

function isUpdate(u) {
  return (
    u && typeof u === 'object' && typeof u.metric === 'string' && typeof u.window === 'string' &&
    typeof u.dimension === 'string' && typeof u.value === 'string'
  );
}

// Takes one metric update. Returns true when it was new to the page.
export function applyUpdate(model, u) {
  if (!isUpdate(u)) return false;
  const key = sliceKey(u);
  const old = model.latest.get(key);
  // the stream sends the snapshot first, and again after a reconnect: an older copy of a
  // slice must not replace a newer one
  if (old && old.as_of && u.as_of && u.as_of < old.as_of) return false;
  model.latest.set(key, u);
  model.updates++;
  if (u.dimension === 'all' && u.value === 'all' && typeof u.score === 'number') {
    const t = Date.parse(u.as_of) / 1000;
    if (Number.isFinite(t)) {
      const hk = `${u.metric}|${u.window}`;
      let h = model.history.get(hk);
      if (!h) model.history.set(hk, (h = []));
      const last = h[h.length - 1];
      if (last && last[0] === t) last[1] = u.score;
      else if (!last || t > last[0]) h.push([t, u.score]);
      if (h.length > MAX_POINTS) h.splice(0, h.length - MAX_POINTS);
    }
  }
  return true;
}

// Takes one alert; a repeat of the same survey (delivery is at least once) is dropped.
export function applyAlert(model, a) {
  if (!a || typeof a !== 'object') return false;
  const id = a.survey_id ? String(a.survey_id) : null;
  if (id) {
    if (model.alertIds.has(id)) return false;
    model.alertIds.add(id);
  }
  model.alerts.unshift(a);
  while (model.alerts.length > MAX_ALERTS) {
    const gone = model.alerts.pop();
    if (gone.survey_id) model.alertIds.delete(String(gone.survey_id));
  }
  return true;
}

export function get(model, metric, window, dimension = 'all', value = 'all') {
  return model.latest.get(`${metric}|${window}|${dimension}|${value}`);
}

export function windows(model) {
  const set = new Set();
  for (const u of model.latest.values()) set.add(u.window);
  return [...set].sort((a, b) => windowSeconds(a) - windowSeconds(b));
}

export function metrics(model) {
  const set = new Set();
  for (const u of model.latest.values()) set.add(u.metric);
  const known = Object.keys(METRIC_LABEL);
  return [...set].sort((a, b) => {
    const ia = known.indexOf(a), ib = known.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
}

export function dimensions(model) {
  const set = new Set();
  for (const u of model.latest.values()) if (u.dimension !== 'all') set.add(u.dimension);
  return [...set].sort();
}

// The slices of one metric/window/dimension, best score first, slices without a score last.
export function breakdown(model, metric, window, dimension) {
  const rows = [];
  for (const u of model.latest.values())
    if (u.metric === metric && u.window === window && u.dimension === dimension) rows.push(u);
  rows.sort((a, b) => {
    const sa = typeof a.score === 'number', sb = typeof b.score === 'number';
    if (sa !== sb) return sa ? -1 : 1;
    if (sa && a.score !== b.score) return b.score - a.score;
    return String(a.value).localeCompare(String(b.value));
  });
  return rows;
}

// A number as published (already rounded to 2 decimals), or a dash for no value.
export function num(v, digits) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  return digits === undefined ? String(v) : v.toFixed(digits);
}

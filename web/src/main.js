// The dashboard: a snapshot from /api/metrics, then live updates from /api/stream.
import './style.css';
import {
  HEADLINE, METRIC_LABEL, SMALL_SAMPLE, applyAlert, applyUpdate, breakdown, createModel,
  dimensions, get, metrics, num, windows,
} from './model.js';
import { createTrends } from './trends.js';

const model = createModel();
const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  updated: $('updated'),
  windows: $('windows'),
  selWindow: $('sel-window'),
  selMetric: $('sel-metric'),
  selDimension: $('sel-dimension'),
  table: $('breakdown'),
  breakdownTitle: $('breakdown-title'),
  trendWindow: $('trend-window'),
  alerts: $('alerts'),
  alertsEmpty: $('alerts-empty'),
};
const trends = createTrends($('trends'), HEADLINE);
// what the person asked for (or the defaults), and what is shown: the same unless the data
// has no such choice yet (the first NPS answers may come after the first CSAT ones)
const wanted = { window: '24h', metric: 'nps', dimension: 'region' };
const chosen = { ...wanted };

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'testid') e.dataset.testid = v;
    else if (k === 'title') e.title = v;
    else e.dataset[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function setStatus(text, cls) {
  ui.status.textContent = text;
  ui.status.className = `status ${cls}`;
}

// ------------------------------------------------------------------ tiles

function tile(name, u, main, detail, testid) {
  const score = el('div', { class: 'score', testid: testid ? `${testid}-score` : undefined }, main);
  if (u) {
    score.dataset.score = typeof u.score === 'number' ? String(u.score) : '';
    score.dataset.asOf = u.as_of || '';
    score.dataset.count = String(u.count);
  }
  const t = el('div', { class: 'tile', testid }, el('div', { class: 'name' }, name), score,
    el('div', { class: 'detail' }, detail));
  if (u && u.count < SMALL_SAMPLE) t.classList.add('small');
  return t;
}

function renderWindow(w) {
  const nps = get(model, 'nps', w), csat = get(model, 'csat', w), ces = get(model, 'ces', w);
  const rr = get(model, 'response_rate', w);
  const tiles = [
    tile('NPS', nps, nps ? num(nps.score) : '—',
      nps ? `±${num(nps.moe95)} · n=${nps.count} · ${nps.promoters}/${nps.passives}/${nps.detractors} P/P/D` : 'no data',
      `tile-nps-${w}`),
    tile('CSAT', csat, csat ? `${num(csat.score)}%` : '—',
      csat ? `95% ${num(csat.ci95_low)}–${num(csat.ci95_high)} · n=${csat.count}` : 'no data',
      `tile-csat-${w}`),
    tile('CES', ces, ces ? num(ces.mean ?? ces.score) : '—',
      ces ? `easy ${num(ces.easy_pct)}% · n=${ces.count}` : 'no data', `tile-ces-${w}`),
    tile('Response rate', rr, rr ? `${num(rr.score)}%` : '—',
      rr ? `${rr.count} of ${rr.requests} requests` : 'no data', `tile-response_rate-${w}`),
  ];
  const asOf = [nps, csat, ces, rr].map((u) => u && u.as_of).filter(Boolean).sort().pop();
  return el('article', { class: 'window', testid: `window-${w}` },
    el('h3', {}, w, el('span', { class: 'hint' }, asOf ? ` as of ${timeText(asOf)}` : '')),
    el('div', { class: 'tiles' }, ...tiles));
}

function renderWindows() {
  const ws = windows(model);
  ui.windows.replaceChildren(...ws.map(renderWindow));
  if (!ws.length) ui.windows.append(el('p', { class: 'hint' }, 'No metric published yet.'));
}

// ------------------------------------------------------------------ controls

function fillSelect(sel, values, label, current) {
  const have = [...sel.options].map((o) => o.value).join('|');
  if (have !== values.join('|')) {
    sel.replaceChildren(...values.map((v) => {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = label ? label(v) : v;
      return o;
    }));
  }
  const pick = values.includes(current) ? current : values[0];
  if (pick !== undefined) sel.value = pick;
  return pick;
}

function renderControls() {
  const ws = windows(model);
  chosen.window = fillSelect(ui.selWindow, ws, null, wanted.window) ?? wanted.window;
  const ms = metrics(model);
  chosen.metric = fillSelect(ui.selMetric, ms, (m) => METRIC_LABEL[m] || m, wanted.metric) ?? wanted.metric;
  const ds = dimensions(model);
  chosen.dimension = fillSelect(ui.selDimension, ds, null, wanted.dimension) ?? wanted.dimension;
}

// ------------------------------------------------------------------ breakdown

function extraOf(u) {
  switch (u.metric) {
    case 'nps': return `±${num(u.moe95)}`;
    case 'csat': return `${num(u.ci95_low)}–${num(u.ci95_high)}%`;
    case 'ces': return `easy ${num(u.easy_pct)}%`;
    case 'response_rate': return `of ${u.requests}`;
    case 'frt': case 'art': return `p90 ${num(u.p90)}`;
    default: return '';
  }
}

function renderBreakdown() {
  const { metric, window: w, dimension } = chosen;
  ui.breakdownTitle.textContent = `${METRIC_LABEL[metric] || metric}, ${w}, by ${dimension}`;
  const thead = ui.table.tHead, tbody = ui.table.tBodies[0];
  const head = el('tr', {}, el('th', {}, dimension), el('th', { class: 'r' }, 'score'),
    el('th', { class: 'r' }, 'n'), el('th', {}, ''));
  thead.replaceChildren(head);
  const rows = breakdown(model, metric, w, dimension).map((u) => {
    const small = u.count < SMALL_SAMPLE;
    const tr = el('tr', { class: small ? 'small' : '', value: u.value },
      el('td', {}, u.value, small ? el('span', { class: 'small-tag', title: `fewer than ${SMALL_SAMPLE} responses` }, 'n<30') : null),
      el('td', { class: 'r' }, num(u.score)),
      el('td', { class: 'r' }, String(u.count)),
      el('td', { class: 'hint' }, extraOf(u)));
    return tr;
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'hint' }, 'no slice for this choice')));
  tbody.replaceChildren(...rows);
}

// ------------------------------------------------------------------ trends

function renderTrends() {
  ui.trendWindow.textContent = `all customers, ${chosen.window}`;
  trends.update((m) => model.history.get(`${m}|${chosen.window}`));
}

// ------------------------------------------------------------------ alerts

function timeText(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString();
}

function renderAlerts() {
  ui.alertsEmpty.hidden = model.alerts.length > 0;
  ui.alerts.replaceChildren(...model.alerts.map((a) => {
    const dims = a.dims && typeof a.dims === 'object'
      ? Object.entries(a.dims).map(([k, v]) => `${k} ${v}`).join(' · ') : '';
    return el('li', { class: `alert ${a.type || ''}`, testid: 'alert' },
      el('div', { class: 'alert-head' },
        el('span', { class: 'badge' }, String(a.type || 'alert')),
        el('span', { class: 'alert-score' }, `${a.kind || ''} ${a.score ?? ''}`.trim()),
        el('span', { class: 'hint' }, a.answered_at ? timeText(a.answered_at) : '')),
      el('div', { class: a.comment ? 'comment' : 'comment none' }, a.comment ? String(a.comment) : 'no comment'),
      dims ? el('div', { class: 'hint dims' }, dims) : null);
  }));
}

// ------------------------------------------------------------------ refresh

let pending = { tiles: false, alerts: false };
let scheduled = false;

// Many updates arrive together (the stream's snapshot alone is one per slice): they are
// drawn at most a few times a second.
function schedule(what) {
  pending[what] = true;
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => requestAnimationFrame(render), 200);
}

function render() {
  scheduled = false;
  const p = pending;
  pending = { tiles: false, alerts: false };
  if (p.tiles) {
    renderControls();
    renderWindows();
    renderBreakdown();
    renderTrends();
    ui.updated.textContent = `${model.updates} updates received`;
  }
  if (p.alerts) renderAlerts();
}

for (const [sel, key] of [[ui.selWindow, 'window'], [ui.selMetric, 'metric'], [ui.selDimension, 'dimension']]) {
  sel.addEventListener('change', () => {
    wanted[key] = sel.value;
    schedule('tiles');
  });
}

// ------------------------------------------------------------------ data

async function loadSnapshot() {
  const r = await fetch('api/metrics', { cache: 'no-store' });
  if (!r.ok) throw new Error(`api/metrics: HTTP ${r.status}`);
  const list = await r.json();
  if (!Array.isArray(list)) throw new Error('api/metrics: not an array');
  for (const u of list) applyUpdate(model, u);
  schedule('tiles');
}

function listen() {
  const es = new EventSource('api/stream');
  es.addEventListener('open', () => setStatus('live', 'live'));
  es.addEventListener('error', () => {
    // EventSource reconnects by itself; the snapshot it is sent again fills any gap
    setStatus(es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…', 'down');
  });
  es.addEventListener('metric', (ev) => {
    try {
      if (applyUpdate(model, JSON.parse(ev.data))) schedule('tiles');
    } catch (e) {
      console.warn('bad metric event', e);
    }
  });
  es.addEventListener('alert', (ev) => {
    try {
      if (applyAlert(model, JSON.parse(ev.data))) schedule('alerts');
    } catch (e) {
      console.warn('bad alert event', e);
    }
  });
}

setStatus('loading…', 'down');
renderAlerts();
loadSnapshot()
  .catch((e) => {
    console.warn(e);
    setStatus(`snapshot failed: ${e.message}`, 'down');
  })
  .finally(listen);

// fogate operator page: reads /admin/api/* every few seconds and renders it. Every value
// reaches the page through textContent, never parsed as markup: file names come from clients.
// The admin token is kept in sessionStorage only (this tab, this session).
'use strict';

const REFRESH_MS = 5000;
const AMBER_MS = 15 * 60 * 1000;
const RED_MS = 25 * 60 * 1000;
const TOKEN_KEY = 'fogate.adminToken';
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let timer = null;
let historyCursor = null;
let detailId = null;

// ---- small helpers ----

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    if (c instanceof Node) {
      const td = document.createElement('td');
      td.appendChild(c);
      tr.appendChild(td);
    } else {
      tr.appendChild(el('td', c === undefined || c === null ? '' : c));
    }
  }
  return tr;
}

// A shortened id shown in a cell, the whole of it in the tooltip.
function short(id, keep) {
  const s = el('span', id && id.length > keep + 1 ? id.slice(0, keep) + '…' : id || '');
  if (id) s.title = id;
  return s;
}

// The ledger id "env:activity:blob:guid" shown as "blob:guid-start…".
function shortExport(id) {
  const parts = String(id).split(':');
  const tail = parts.length > 2 ? parts.slice(2).join(':') : String(id);
  const s = el('span', tail.length > 14 ? tail.slice(0, 13) + '…' : tail);
  s.title = id;
  return s;
}

function labelCells(table, tr) {
  const heads = table.tHead.rows[0].cells;
  for (let i = 0; i < tr.cells.length && i < heads.length; i++)
    tr.cells[i].dataset.label = heads[i].textContent;
}

function fill(tableId, rows, empty, cols) {
  const table = $(tableId);
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    labelCells(table, r);
    body.appendChild(r);
  }
  if (!rows.length) {
    const td = el('td', empty, 'muted');
    td.colSpan = cols;
    const tr = document.createElement('tr');
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function time(v) {
  if (v === undefined || v === null || v === '') return '';
  const d = typeof v === 'number' ? new Date(v) : new Date(String(v));
  return isNaN(d) ? String(v) : d.toLocaleString();
}

function duration(ms) {
  if (ms === undefined || ms === null || !isFinite(ms)) return '';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}

function ageClass(ms) {
  return ms >= RED_MS ? 'age-red' : ms >= AMBER_MS ? 'age-amber' : '';
}

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

function showError(text) {
  const e = $('error');
  e.textContent = text || '';
  e.hidden = !text;
}

async function api(method, path) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch('/admin/api/' + path, { method, headers, cache: 'no-store' });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const err = new Error((body && body.message) || ('HTTP ' + r.status));
    err.status = r.status;
    err.code = body && body.code;
    throw err;
  }
  return body;
}

// ---- confirmation step for every action ----

function confirmThen(text, action) {
  const d = $('confirm');
  $('confirm-text').textContent = text;
  d.returnValue = '';
  d.onclose = async () => {
    if (d.returnValue !== 'ok') return;
    try {
      const res = await action();
      toast('Done: ' + text.replace(/\?$/, '') + (res && res.by ? ' (by ' + res.by + ')' : ''));
    } catch (e) {
      toast('Failed: ' + e.message + (e.code ? ' [' + e.code + ']' : ''));
    }
    refresh();
  };
  d.showModal();
}

function actionButton(label, text, method, path, danger) {
  const b = el('button', label, danger ? 'danger' : '');
  b.type = 'button';
  b.disabled = !token;
  b.title = token ? '' : 'enter the admin token first';
  b.addEventListener('click', () => confirmThen(text, () => api(method, path)));
  return b;
}

// ---- rendering ----

function renderEnvs(envs) {
  fill('envs', envs.map((e) => {
    const err = e.last_error;
    const cred = e.credential_expires_at ? time(e.credential_expires_at * 1000) : 'unknown';
    return row([
      e.environment,
      el('span', e.token_present ? 'held' : 'none', e.token_present ? 'ok' : 'bad'),
      e.token_present ? duration((e.expires_in_s || 0) * 1000) : '',
      cred,
      e.throttled_for_s > 0 ? el('span', 'closed ' + e.throttled_for_s + ' s', 'bad') : 'open',
      err ? [err.reason, err.error, err.at ? time(err.at * 1000) : ''].filter(Boolean).join(' · ') : '',
      e.last_d365_error ? (e.last_d365_error.status ? 'HTTP ' + e.last_d365_error.status
        : 'no answer') + ' · ' + time(e.last_d365_error.at * 1000) : '',
    ]);
  }), 'no environments', 7);
}

// Each job's `today` comes from the admin API (counted in Redis when a record turns final,
// cluster-wide, per UTC day); null when the history is off or Redis could not be read.
function renderJobs(jobs, day, historyOn) {
  const sel = $('f-job');
  if (sel.options.length !== jobs.length + 1) {
    sel.replaceChildren(el('option', 'all'));
    sel.options[0].value = '';
    for (const j of jobs) {
      const o = el('option', j.name);
      o.value = j.name;
      sel.appendChild(o);
    }
  }
  $('today-note').textContent = day
    ? '(Today: records that turned final on ' + day.date + ' ' + day.time_zone + ', every instance)'
    : '(Today: records that turned final since 00:00 UTC, every instance)';
  fill('jobs', jobs.map((j) => {
    const t = j.today;
    const state = j.paused
      ? el('span', 'paused by ' + (j.paused.by || '?') + ' since ' + time(j.paused.at_ms), 'paused')
      : el('span', 'running', 'ok');
    const counts = !historyOn ? 'history off' : !day ? 'unavailable'
      : t && Object.keys(t.counts).length
        ? Object.entries(t.counts).map(([k, v]) => k + ' ' + v).join(', ') : 'none';
    const last = t && t.last_ms ? time(t.last_ms) : '';
    const act = j.paused
      ? actionButton('Resume', 'Resume job ' + j.name + '?', 'POST',
        'jobs/' + encodeURIComponent(j.name) + '/resume')
      : actionButton('Pause', 'Pause job ' + j.name + ' on every instance?', 'POST',
        'jobs/' + encodeURIComponent(j.name) + '/pause', true);
    const tr = row([j.name, j.environment, j.direction, state,
      j.direction === 'import' ? last : '', j.direction === 'export' ? last : '',
      counts, act]);
    tr.dataset.job = j.name;
    return tr;
  }), 'no jobs', 8);
}

function renderExports(x) {
  const now = x.now_ms;
  fill('exports', (x.unconfirmed || []).map((m) => {
    const age = now - (m.last_dequeue_ms || m.first_ms || now);
    const ageCell = el('span', duration(age), ageClass(age));
    const state = m.state + (m.released && !m.lease_until ? ', released' : '');
    const tr = row([shortExport(m.id), short(m.message_id, 8), m.client || '', state,
      m.deliveries || 0, ageCell,
      actionButton('Release', 'Release the lease of export ' + m.id +
        '? D365\'s next offer of it goes to any consumer.', 'POST',
        'exports/' + encodeURIComponent(m.id) + '/release', true)]);
    tr.dataset.export = m.id;
    tr.className = ageClass(age);
    return tr;
  }), x.ledger_enabled === false ? 'the ledger is off' : 'none waiting', 7);
  fill('outbox', (x.unacked || []).map((m) => {
    const age = now - (m.confirmed_ms || m.last_dequeue_ms || now);
    const tr = row([shortExport(m.id), short(m.message_id, 8), m.confirmed_by || '',
      m.ob_attempts || 0,
      m.due_ms ? (m.due_ms <= now ? 'due now' : 'in ' + duration(m.due_ms - now)) : '',
      el('span', duration(age), ageClass(age)),
      actionButton('Retry ack', 'Retry the ack of export ' + m.id + ' to D365 now?', 'POST',
        'exports/' + encodeURIComponent(m.id) + '/retry-ack')]);
    tr.dataset.export = m.id;
    return tr;
  }), x.ledger_enabled === false ? 'the ledger is off' : 'empty', 7);
}

function historyRow(r) {
  const file = r.file_name ? el('span', r.file_name) : short(r.message_id, 8);
  if (!r.file_name) file.className = 'muted';
  const tr = row([time(r.received_at || r.delivered_at), r.job, r.direction, file,
    el('span', r.status || '', /error|fail|notenqueued|notstarted|cancel/i.test(r.status || '') ? 'bad' : ''),
    r.client || (r.delivered_to || []).join(', '), r.size === undefined ? '' : r.size]);
  tr.cells[3].className = 'file';
  tr.className = 'clickable';
  tr.dataset.id = r.id || r.record_id;
  tr.addEventListener('click', () => showDetail(tr.dataset.id));
  return tr;
}

function historyQuery() {
  const q = new URLSearchParams();
  const job = $('f-job').value, st = $('f-status').value.trim(), file = $('f-file').value.trim();
  const since = $('f-since').value, until = $('f-until').value;
  if (job) q.set('job', job);
  if (st) q.set('status', st);
  if (file) q.set('file', file);
  if (since) q.set('since', String(new Date(since).getTime()));
  if (until) q.set('until', String(new Date(until).getTime()));
  q.set('limit', '50');
  return q;
}

async function loadHistory(more) {
  const q = historyQuery();
  if (more && historyCursor) q.set('cursor', historyCursor);
  const page = await api('GET', 'history?' + q.toString());
  const body = $('history').tBodies[0];
  if (!more) body.replaceChildren();
  for (const r of page.records || []) {
    const tr = historyRow(r);
    labelCells($('history'), tr);
    body.appendChild(tr);
  }
  if (!body.rows.length) fill('history', [], 'no records', 7);
  historyCursor = page.next_cursor || null;
  $('more').hidden = !historyCursor;
}

async function showDetail(id) {
  detailId = id;
  let r;
  try {
    r = await api('GET', 'history/' + encodeURIComponent(id));
  } catch (e) {
    toast('Cannot read the record: ' + e.message);
    return;
  }
  $('detail').hidden = false;
  $('detail-title').textContent = (r.direction || '') + ' ' + (r.file_name || r.message_id || id);
  const dl = $('detail-fields');
  dl.replaceChildren();
  const fields = [['Record', r.id || id], ['Job', r.job], ['Environment', r.environment],
    ['Status', r.status], ['Client', r.client], ['File', r.file_name],
    ['Definition group', r.definition_group], ['Message id', r.message_id],
    ['Execution id', r.execution_id], ['Size', r.size], ['SHA-256', r.sha256],
    ['Received', time(r.received_at)], ['Sent to D365', time(r.sent_at)],
    ['Delivered to', (r.delivered_to || []).join(', ')], ['Deliveries', r.deliveries],
    ['Dequeued', time(r.dequeued_at)], ['Delivered', time(r.delivered_at)],
    ['Confirmed by', r.confirmed_by],
    ['Confirmed', time(r.confirmed_at)], ['Acked', time(r.acked_at)], ['Final', time(r.final_at)],
    ['Error', r.error]];
  for (const [k, v] of fields) {
    if (v === undefined || v === null || v === '') continue;
    dl.appendChild(el('dt', k));
    dl.appendChild(el('dd', v));
  }
  const ol = $('detail-statuses');
  ol.replaceChildren();
  for (const s of r.statuses || []) ol.appendChild(el('li', time(s.at) + ' — ' + s.status));
  $('detail-errors').textContent = r.errors ? JSON.stringify(r.errors, null, 2) : 'none';
  const rp = $('repoll');
  rp.hidden = !(r.direction === 'import' && !r.final && r.message_id);
  rp.disabled = !token;
  $('detail').scrollIntoView({ block: 'nearest' });
}

// ---- the refresh loop ----

async function refresh() {
  clearTimeout(timer);
  try {
    const ov = await api('GET', 'overview');
    renderEnvs(ov.environments || []);
    renderJobs(ov.jobs || [], ov.today, ov.instance.history);
    renderExports(await api('GET', 'exports'));
    const draining = ov.instance.draining;
    $('state').textContent = draining ? 'draining' : 'serving';
    $('state').className = draining ? 'pill bad' : 'pill';
    $('instance').textContent = ov.instance.workers + ' worker(s); ' +
      (draining ? 'draining: /readyz answers 503' : 'ready to serve') + '.';
    $('drain').disabled = !token || draining;
    $('updated').textContent = 'updated ' + new Date(ov.now_ms).toLocaleTimeString();
    if (ov.instance.history && !$('detail').hidden && detailId) showDetail(detailId);
    if (ov.instance.history && !historyCursor) await loadHistory(false);
    $('history-section').hidden = !ov.instance.history;
    showError('');
  } catch (e) {
    showError('Cannot read fogate\'s admin API: ' + e.message +
      (e.status === 401 || e.status === 403 ? ' (enter the admin token)' : ''));
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function setToken(t) {
  token = t;
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  $('tokenstate').textContent = t ? 'set (this tab only)' : 'none (kept for this tab only)';
  refresh();
}

document.addEventListener('DOMContentLoaded', () => {
  $('tz').textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  $('tokenform').addEventListener('submit', (ev) => {
    ev.preventDefault();
    setToken($('token').value.trim());
    $('token').value = '';
  });
  $('tokenforget').addEventListener('click', () => setToken(''));
  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    historyCursor = null;
    loadHistory(false).catch((e) => toast('History: ' + e.message));
  });
  $('more').addEventListener('click', () => loadHistory(true).catch((e) => toast(e.message)));
  $('detail-close').addEventListener('click', () => { $('detail').hidden = true; detailId = null; });
  $('repoll').addEventListener('click', () => confirmThen('Poll the status of this import now?',
    () => api('POST', 'history/' + encodeURIComponent(detailId) + '/repoll')));
  $('drain').addEventListener('click', () => confirmThen(
    'Drain this instance? /readyz turns 503 at once, then it stops taking requests and exits.',
    () => api('POST', 'drain')));
  $('tokenstate').textContent = token ? 'set (this tab only)' : 'none (kept for this tab only)';
  refresh();
});

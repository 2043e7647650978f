// Switchyard's status page: reads api/status every second (2 s above 500 routes) and updates the page in place.
// Plain browser JavaScript, no build step, no library. Every value from the server is written
// with textContent (route names, tags and hosts come from Consul and templates): never as markup.
// Rows are kept per route and updated cell by cell, only where a value changed, so a refresh of
// 1,000 routes touches the DOM only where traffic or state moved.
/* global document, window, sessionStorage, fetch, performance, setTimeout, clearTimeout */
'use strict';

(() => {
  /** Every second; every 2 s with more than SLOW_ROUTES routes (the answer then weighs ~0.4 KiB per endpoint). */
  const REFRESH_MS = 1000;
  const SLOW_REFRESH_MS = 2000;
  const SLOW_ROUTES = 500;
  let period = REFRESH_MS;
  const TOKEN_KEY = 'switchyard-admin-token';
  const needsToken = document.body.dataset.auth === 'token';

  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  /** What the test and the footer read: how long rendering took. */
  const perf = { renders: 0, firstRenderMs: null, lastRenderMs: null, maxRenderMs: 0, routes: 0 };
  window.__switchyardStatus = perf;

  // ---- token -------------------------------------------------------------------------------
  class Unauthorized extends Error {}

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  function askToken(message) {
    $('main').hidden = true;
    $('token-form').hidden = false;
    $('token-error').textContent = message || '';
    $('token-input').focus();
  }

  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token-input').value.trim();
    if (token === '') return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    $('token-form').hidden = true;
    schedule(0);
  });

  async function api(path) {
    const res = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      throw new Unauthorized();
    }
    const body = await res.json();
    if (!res.ok) throw new Error(body && body.message ? body.message : `HTTP ${res.status}`);
    return body;
  }

  // ---- formatting --------------------------------------------------------------------------
  const dash = '–';
  const fmtMs = (ms) => (ms === null ? dash : ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : String(Math.round(ms)));
  const fmtRps = (rps, requests) => (requests === 0 ? dash : rps < 10 ? rps.toFixed(2) : rps.toFixed(1));
  /** A share as `switchyard explain` prints it (0.1% steps). */
  const pct = (share) => `${Math.round(share * 1000) / 10}%`;
  const fmtErr = (rate) => (rate === null ? dash : `${(rate * 100).toFixed(rate === 0 || rate >= 0.1 ? 0 : 1)}%`);
  const fmtAge = (seconds) => (seconds === null ? 'never' : seconds < 60 ? `${seconds} s ago` : seconds < 3600 ? `${Math.round(seconds / 60)} min ago` : `${Math.round(seconds / 3600)} h ago`);
  const fmtTime = (iso) => (iso === null ? dash : new Date(iso).toLocaleTimeString());
  const matchOf = (r) => `${r.host === null ? '*' : r.host}${r.path}${r.strip === null ? '' : `  (strip ${r.strip})`}`;
  const healthClass = (status) => (status === 'passing' ? 'good' : status === 'warning' ? 'warn' : 'bad');

  // ---- cells that remember their value -----------------------------------------------------
  function cell(row, className) {
    const td = el('td', className);
    row.appendChild(td);
    return { td, text: undefined, cls: className || '' };
  }
  function setText(c, text) {
    if (c.text !== text) {
      c.text = text;
      c.td.textContent = text;
    }
  }
  function setClass(c, cls) {
    if (c.cls !== cls) {
      c.cls = cls;
      c.td.className = cls;
    }
  }

  // ---- routes ------------------------------------------------------------------------------
  const routesTable = document.querySelector('table.routes');
  /** name → { tbody, shape, rowsets, search } */
  const routeViews = new Map();
  let routeOrder = [];
  let filterText = '';

  /** The route's structure: a change rebuilds its rows; otherwise cells are updated in place. */
  const shapeOf = (r) => r.destinations.map((d) => `${d.key}\u0000${d.endpoints.map((e) => e.id).join('\u0000')}`).join('\u0001');

  function trafficCells(row) {
    return { inflight: cell(row, 'num'), rps: cell(row, 'num'), err: cell(row, 'num'), p50: cell(row, 'num'), p99: cell(row, 'num') };
  }
  /** `t`: the last minute (null: no request, no failure, none in flight). */
  function setTraffic(cells, t) {
    setText(cells.inflight, t === null ? '0' : String(t.inflight));
    setText(cells.rps, t === null ? dash : fmtRps(t.rps, t.requests));
    setText(cells.err, t === null ? dash : t.failures > 0 ? `${fmtErr(t.errorRate)} (${t.failures} failed)` : fmtErr(t.errorRate));
    setClass(cells.err, t !== null && t.errorRate !== null && t.errorRate >= 0.05 ? 'num bad' : t !== null && t.failures > 0 ? 'num warn' : 'num');
    setText(cells.p50, t === null ? dash : fmtMs(t.p50));
    setText(cells.p99, t === null ? dash : fmtMs(t.p99));
  }

  function buildRoute(r) {
    const tbody = el('tbody');
    const head = el('tr', 'route');
    const view = { tbody, shape: shapeOf(r), search: '', route: {}, dests: [] };
    view.route.name = cell(head);
    view.route.match = cell(head, 'rule');
    view.route.state = cell(head);
    view.route.source = cell(head, 'muted');
    view.route.traffic = trafficCells(head);
    tbody.appendChild(head);
    for (const d of r.destinations) {
      const row = el('tr', 'dest');
      const dv = { key: cell(row), weight: cell(row), health: cell(row), state: cell(row), endpoints: [] };
      row.appendChild(el('td'));
      row.appendChild(el('td'));
      row.appendChild(el('td'));
      row.appendChild(el('td'));
      row.appendChild(el('td'));
      tbody.appendChild(row);
      for (let i = 0; i < d.endpoints.length; i++) {
        const erow = el('tr', 'ep');
        dv.endpoints.push({ row: erow, rowClass: 'ep', id: cell(erow), weight: cell(erow), health: cell(erow), state: cell(erow), traffic: trafficCells(erow) });
        tbody.appendChild(erow);
      }
      view.dests.push(dv);
    }
    return view;
  }

  function updateRoute(view, r) {
    setText(view.route.name, r.name);
    setText(view.route.match, matchOf(r));
    // The template file's name (the whole path in the tooltip), or the tag the route came from.
    setText(view.route.source, r.origin === 'tag' ? `tag ${r.source}` : r.source.slice(r.source.lastIndexOf('/') + 1));
    if (view.route.name.td.title !== r.source) view.route.name.td.title = r.source;
    const endpoints = r.destinations.reduce((n, d) => n + d.endpoints.length, 0);
    const taking = r.destinations.reduce((n, d) => n + (d.weight > 0 ? d.endpoints.filter((e) => e.weight > 0 && !e.ejected).length : 0), 0);
    setText(view.route.state, `${taking}/${endpoints} taking traffic`);
    setClass(view.route.state, taking === 0 ? 'bad' : '');
    setTraffic(view.route.traffic, r.traffic);
    const search = [r.name, r.host || '', r.path];
    r.destinations.forEach((d, i) => {
      const dv = view.dests[i];
      search.push(d.key);
      setText(dv.key, d.key);
      setText(dv.weight, d.weight === d.configuredWeight ? `weight ${d.weight}` : `weight ${d.configuredWeight} → ${d.weight} (KV)`);
      setClass(dv.weight, d.weight === d.configuredWeight ? '' : 'warn');
      d.endpoints.forEach((e, k) => {
        const ev = dv.endpoints[k];
        search.push(e.id, `${e.address}:${e.port}`);
        setText(ev.id, `${e.id}  ${e.address}:${e.port}`);
        setText(ev.weight, `weight ${e.weight}`);
        setText(ev.health, e.status);
        setClass(ev.health, healthClass(e.status));
        const state = e.ejected ? `ejected until ${fmtTime(e.ejectedUntil)}` : e.state;
        setText(ev.state, state);
        setClass(ev.state, e.ejected || e.state === 'unhealthy' ? 'bad' : e.state === 'draining' ? 'warn' : '');
        const rowClass = e.ejected || e.state !== 'active' ? 'ep out' : 'ep';
        if (ev.rowClass !== rowClass) {
          ev.rowClass = rowClass;
          ev.row.className = rowClass;
        }
        setTraffic(ev.traffic, e.traffic);
      });
    });
    view.search = search.join(' ').toLowerCase();
    const hidden = filterText !== '' && !view.search.includes(filterText);
    if (view.tbody.hidden !== hidden) view.tbody.hidden = hidden;
  }

  function renderRoutes(routes) {
    const seen = new Set();
    let orderChanged = routes.length !== routeOrder.length;
    routes.forEach((r, i) => {
      seen.add(r.name);
      let view = routeViews.get(r.name);
      const shape = view === undefined ? undefined : shapeOf(r);
      if (view === undefined || view.shape !== shape) {
        const next = buildRoute(r);
        // In place when it is on the page; a new route's rows are placed by the reorder below.
        if (view !== undefined) view.tbody.replaceWith(next.tbody);
        view = next;
        routeViews.set(r.name, view);
      }
      if (routeOrder[i] !== r.name) orderChanged = true;
      updateRoute(view, r);
    });
    for (const [name, view] of routeViews) {
      if (seen.has(name)) continue;
      view.tbody.remove();
      routeViews.delete(name);
    }
    if (orderChanged) {
      // One fragment in table order (moves existing bodies; new ones are appended for the first time).
      const fragment = document.createDocumentFragment();
      for (const r of routes) fragment.appendChild(routeViews.get(r.name).tbody);
      routesTable.appendChild(fragment);
      routeOrder = routes.map((r) => r.name);
    }
    $('empty').hidden = routes.length !== 0;
    setCount(routes.length);
  }

  function setCount(total) {
    let shown = total;
    if (filterText !== '') shown = [...routeViews.values()].filter((v) => !v.tbody.hidden).length;
    $('route-count').textContent = filterText === '' ? `(${total})` : `(${shown} of ${total})`;
  }

  $('filter').addEventListener('input', () => {
    filterText = $('filter').value.trim().toLowerCase();
    for (const view of routeViews.values()) view.tbody.hidden = filterText !== '' && !view.search.includes(filterText);
    setCount(routeViews.size);
  });

  // ---- sources, rejected build, summary ----------------------------------------------------
  function renderSources(sources) {
    const body = $('sources');
    while (body.rows.length > sources.length) body.deleteRow(-1);
    sources.forEach((s, i) => {
      const row = body.rows[i] || body.insertRow();
      while (row.cells.length < 4) row.insertCell();
      const rejected = (s.rejectedFiles || []).length;
      const state = (!s.synced ? 'not synced' : s.healthy ? 'synced' : 'failing (last good kept)') + (rejected === 0 ? '' : `, ${rejected} file(s) rejected`);
      const cls = !s.synced || !s.healthy || rejected > 0 ? 'bad' : 'good';
      const values = [s.name, state, s.lastSyncAt === null ? 'never' : `${fmtAge(s.ageSeconds)} (${fmtTime(s.lastSyncAt)})`, s.lastError || dash];
      values.forEach((v, k) => {
        if (row.cells[k].textContent !== v) row.cells[k].textContent = v;
      });
      if (row.cells[1].className !== cls) row.cells[1].className = cls;
    });
  }

  function renderStatus(status) {
    renderSources(status.sources);
    const rejected = status.lastRejectedBuild;
    const text = rejected === null ? 'none since start' : `${fmtTime(rejected.at)} · ${rejected.code}: ${rejected.message}`;
    if ($('rejected').textContent !== text) {
      $('rejected').textContent = text;
      $('rejected').className = rejected === null ? 'muted' : 'bad';
    }
    const files = status.sources.flatMap((s) => (s.rejectedFiles || []).map((f) => `${s.name}: ${f.message}`));
    const problems = (files.length === 0 ? '' : `Rejected file(s): ${files.join(' · ')}. `) +
      (status.problemCount === 0 ? 'No build problems.' : `${status.problemCount} build problem(s), e.g. ${status.problems.slice(0, 3).map((p) => `${p.kind} ${p.source}: ${p.message}`).join(' · ')}`);
    if ($('problems').textContent !== problems) {
      $('problems').textContent = problems;
      $('problems').className = files.length === 0 ? 'muted' : 'bad';
    }
    const workers = status.workers === null ? '' : ` · workers ${status.workers.answered}/${status.workers.asked} answered`;
    $('summary').textContent = `table v${status.version} · swapped ${fmtTime(status.swappedAt)} · ${status.lifecycle || dash}${status.ready ? ', ready' : ', not ready'}${workers}`;
    renderRoutes(status.routes);
  }

  // ---- refresh loop ------------------------------------------------------------------------
  let timer;
  let lastOk = 0;
  let busy = false;

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    // The period counts from the request's start: a slow answer does not stretch it (at least 200 ms apart).
    const began = Date.now();
    const next = () => schedule(Math.max(200, period - (Date.now() - began)));
    try {
      const status = await api('api/status');
      const started = performance.now();
      $('token-form').hidden = true;
      $('main').hidden = false;
      renderStatus(status);
      const ms = performance.now() - started;
      perf.renders += 1;
      perf.lastRenderMs = ms;
      perf.maxRenderMs = Math.max(perf.maxRenderMs, ms);
      if (perf.firstRenderMs === null) perf.firstRenderMs = ms;
      perf.routes = status.routes.length;
      period = status.routes.length > SLOW_ROUTES ? SLOW_REFRESH_MS : REFRESH_MS;
      lastOk = Date.now();
      $('refresh').textContent = `updated ${new Date(lastOk).toLocaleTimeString()}`;
      $('refresh').className = 'refresh';
      $('footer').textContent = `${status.routes.length} routes · render ${ms.toFixed(1)} ms (first ${perf.firstRenderMs.toFixed(1)} ms) · refresh every ${period / 1000} s`;
      next();
    } catch (err) {
      if (err instanceof Unauthorized) {
        askToken(needsToken || lastOk !== 0 ? 'The token was refused: enter it again.' : '');
        return;
      }
      $('refresh').textContent = `update failed: ${err.message}${lastOk === 0 ? '' : ` (last good ${new Date(lastOk).toLocaleTimeString()})`}`;
      $('refresh').className = 'refresh stale';
      next();
    } finally {
      busy = false;
    }
  }

  // ---- "where would this request go" -------------------------------------------------------
  function renderMatch(result, note) {
    const box = $('match-result');
    box.replaceChildren();
    if (note !== '') box.appendChild(el('p', 'muted', note));
    const outcome = result.outcome === 'routed' ? `routed to route "${result.route.name}"` : `${result.outcome} (${result.status})`;
    box.appendChild(el('p', result.outcome === 'routed' ? 'outcome good' : 'outcome bad', outcome));
    box.appendChild(el('p', 'why', result.reason));
    if (result.route) {
      const r = result.route;
      box.appendChild(el('p', 'mono', `match ${matchOf(r)} → upstream target ${r.upstreamTarget}`));
      // Shares of the route's new requests, as `switchyard explain` prints them: an endpoint's is
      // its destination's share times its share within the destination.
      box.appendChild(el('p', 'muted', 'Shares are of this route\'s new requests.'));
      const list = el('ul');
      for (const d of r.destinations) {
        const item = el('li', '', `${d.key}: ${pct(d.share)} of the route`);
        const inner = el('ul');
        for (const e of d.endpoints) {
          const within = d.endpoints.length > 1 ? ` (${pct(e.share)} of ${d.key})` : '';
          const li = el('li', e.takesTraffic ? '' : 'muted', `${e.id} ${e.address}:${e.port} · ${pct(d.share * e.share)} of the route${within} · `);
          li.appendChild(el('span', 'why', e.why));
          inner.appendChild(li);
        }
        item.appendChild(inner);
        list.appendChild(item);
      }
      box.appendChild(list);
    }
  }

  $('match-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const host = $('match-host').value.trim();
    const path = $('match-path').value.trim() || '/';
    // /api/match takes the target raw, last: exactly as a client would send it.
    const url = `api/match?${host === '' ? '' : `host=${encodeURIComponent(host)}&`}path=${path.replace(/#/g, '%23')}`;
    try {
      // An empty Host box asks as a request without a Host header, which HTTP/1.1 forbids: say so
      // first, so the answer's caveat about it reads as what it is.
      const note = host === '' && !/^https?:\/\//i.test(path)
        ? 'Host left empty: the answer is for a request without a Host header, so only routes for any host can match. Fill in Host to ask as a browser or curl would.'
        : '';
      renderMatch(await api(url), note);
    } catch (err) {
      if (err instanceof Unauthorized) {
        askToken('The token was refused: enter it again.');
        return;
      }
      $('match-result').replaceChildren(el('p', 'bad', `could not explain: ${err.message}`));
    }
  });

  if (needsToken && !sessionStorage.getItem(TOKEN_KEY)) askToken('');
  else schedule(0);
})();

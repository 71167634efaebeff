// raftguard console. Plain JavaScript, no dependencies.
//
// Rules kept throughout: user data reaches the page only through
// textContent, attribute values and form values, never parsed as HTML; every
// request goes to the node that served this page (which forwards writes to
// the leader); writes carry the session's CSRF token.
'use strict';

(() => {
  const RUNBOOK_HANDOVER_WARNING =
    'What clients notice: a planned handover (`transfer-leader`, or stopping the leader), about 0.1–0.3 s of lost packets. ' +
    'There is no automatic failback: a node that comes back joins as a follower. ' +
    'Check that the cluster is healthy before every step.';

  const MAX_ROWS = 500;

  const state = {
    csrf: '',
    session: null,
    node: '',
    cleanup: [], // run when the page changes
  };

  const $ = (id) => document.getElementById(id);

  // el builds an element. props: class, text, on<event> handlers, value,
  // checked, and plain attributes; children: nodes or strings (as text).
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'value') e.value = v;
      else if (k === 'checked') e.checked = !!v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }

  // ---- API ----

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const opt = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    if (method !== 'GET' && state.csrf) opt.headers['X-CSRF-Token'] = state.csrf;
    let resp;
    try {
      resp = await fetch(path, opt);
    } catch (e) {
      throw new APIError(0, 'unreachable', 'This node does not answer. Open the console on another node of the cluster.');
    }
    const node = resp.headers.get('X-Raftguard-Node');
    const ct = resp.headers.get('Content-Type') || '';
    if (!resp.ok) {
      let code = 'http_' + resp.status;
      let msg = resp.status + ' ' + resp.statusText;
      if (ct.includes('json')) {
        try {
          const b = await resp.json();
          code = b.error.code;
          msg = b.error.message;
        } catch (e) { /* keep the status line */ }
      }
      if (resp.status === 401 && path !== '/v1/session') sessionEnded(msg);
      throw new APIError(resp.status, code, msg);
    }
    if (method === 'GET' && node && path !== '/v1/cluster') setNode(node);
    if (resp.status === 204) return null;
    if (ct.includes('json')) return resp.json();
    return resp.blob();
  }

  function setNode(node) {
    state.node = node;
    renderWho();
  }

  function renderWho() {
    const who = $('who');
    if (!state.session) {
      who.textContent = '';
      return;
    }
    who.textContent = 'node ' + (state.node || '?') + ' · token ' + state.session.token_id;
  }

  // ---- helpers ----

  function flash(msg, isError) {
    const f = $('flash');
    f.textContent = msg;
    f.className = isError ? 'flash error' : 'flash';
    f.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { f.hidden = true; }, isError ? 12000 : 6000);
  }

  function stateBox(kind, text, ...extra) {
    return el('div', { class: 'state ' + kind, role: kind === 'error' ? 'alert' : null }, el('span', { text }), ...extra);
  }

  function errorBox(err, retry) {
    return stateBox('error', errText(err), retry ? [' ', el('button', { type: 'button', class: 'small secondary', onclick: retry, text: 'Try again' })] : null);
  }

  function errText(err) {
    if (err instanceof APIError) {
      if (err.status === 503) return err.message + ' (the cluster may be electing a leader; it retries by itself for a few seconds)';
      return err.message;
    }
    return String(err && err.message ? err.message : err);
  }

  function ago(ts) {
    if (!ts) return 'never';
    const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
    if (s < 5) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' days ago';
  }

  function when(ts) {
    return ts ? new Date(ts).toLocaleString() : '—';
  }

  function bytes(n) {
    n = Number(n || 0);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }

  function list(v) {
    return (v || []).join(', ');
  }

  function splitList(s) {
    return s.split(/[\s,]+/).map((x) => x.trim()).filter((x) => x !== '');
  }

  function badge(text, kind) {
    return el('span', { class: 'badge ' + (kind || ''), text });
  }

  // td is a table cell labelled for the phone layout, where each row is a
  // card of label and value pairs.
  function td(label, ...kids) {
    return el('td', { 'data-label': label }, el('div', null, ...kids));
  }

  function confirmDialog(title, text, okLabel) {
    const d = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    d.returnValue = '';
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
      d.showModal();
      $('confirm-cancel').focus();
    });
  }

  // poll runs f now and then every ms (a number, or a function giving it)
  // until the page changes; runs never overlap.
  function poll(f, ms) {
    let stopped = false;
    let timer = 0;
    const run = async () => {
      if (stopped) return;
      await f();
      if (!stopped) timer = setTimeout(run, typeof ms === 'function' ? ms() : ms);
    };
    state.cleanup.push(() => {
      stopped = true;
      clearTimeout(timer);
    });
    run();
  }

  function busy(button, label, f) {
    return async (ev) => {
      if (ev) ev.preventDefault();
      const old = button.textContent;
      button.disabled = true;
      button.textContent = label;
      try {
        await f();
      } finally {
        button.disabled = false;
        button.textContent = old;
      }
    };
  }

  // ---- session ----

  function setSession(s) {
    state.session = s;
    state.csrf = s.csrf_token;
    if (s.node_id) state.node = s.node_id;
    $('nav').hidden = false;
    $('logout').hidden = false;
    renderWho();
  }

  function clearSession() {
    state.session = null;
    state.csrf = '';
    $('nav').hidden = true;
    $('logout').hidden = true;
    renderWho();
  }

  function sessionEnded(msg) {
    if (!state.csrf) return;
    clearSession();
    showLogin(msg || 'Your session has ended. Log in again.');
  }

  function runCleanup() {
    for (const f of state.cleanup.splice(0)) f();
  }

  function showLogin(msg) {
    runCleanup();
    const main = $('main');
    const token = el('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
    const submit = el('button', { type: 'submit', id: 'login', text: 'Log in' });
    const errors = el('div', { id: 'login-error' });
    if (msg) errors.append(stateBox('error', msg));
    const form = el('form', { class: 'stack', id: 'login-form' },
      el('label', { for: 'token' }, 'Admin token', token),
      submit, errors);
    form.addEventListener('submit', busy(submit, 'Logging in…', async () => {
      errors.replaceChildren();
      try {
        setSession(await api('POST', '/v1/session', { token: token.value }));
        token.value = '';
        try {
          setSession(await api('GET', '/v1/session'));
        } catch (e) { /* the login's answer is enough */ }
        if (location.hash === '#/peers') route();
        else location.hash = '#/peers';
      } catch (e) {
        errors.replaceChildren(stateBox('error', errText(e)));
        token.focus();
      }
    }));
    main.replaceChildren(
      el('h1', { text: 'Log in' }),
      el('p', { class: 'muted', text: 'Log in with an admin API token: bootstrap printed the first one (it is also in /var/lib/raftguard/admin.token on a server), and `raftguard cluster admin-token create` makes more. The session lasts 12 hours and works on every node of the cluster.' }),
      form);
    token.focus();
  }

  async function logout() {
    try {
      await api('DELETE', '/v1/session');
      clearSession();
      showLogin();
      flash('Logged out: the session has ended on every node.');
    } catch (e) {
      flash('Log out failed: ' + errText(e), true);
    }
  }

  // ---- pages ----

  function pagePeers(main) {
    const search = el('input', { type: 'search', id: 'peer-search', placeholder: 'Search by name, address, key or endpoint', 'aria-label': 'Search peers' });
    const count = el('p', { class: 'muted', id: 'peer-count', 'aria-live': 'polite' });
    const region = el('div', { id: 'peers' }, stateBox('loading', 'Loading peers…'));
    const refreshErr = el('div');
    let peers = null;

    const matches = (p, q) => [p.name, p.public_key, p.endpoint || '', list(p.addresses), list(p.allowed_ips)]
      .some((f) => f.toLowerCase().includes(q));

    function render() {
      if (peers === null) return;
      const q = search.value.trim().toLowerCase();
      const shown = q ? peers.filter((p) => matches(p, q)) : peers;
      const online = peers.filter(isOnline).length;
      count.textContent = peers.length + (peers.length === 1 ? ' peer' : ' peers') + ', ' + online + ' online' + (q ? ', ' + shown.length + ' shown' : '');
      if (peers.length === 0) {
        region.replaceChildren(stateBox('empty', 'No peers yet. ', el('a', { href: '#/new', text: 'Create the first peer' })));
        return;
      }
      if (shown.length === 0) {
        region.replaceChildren(stateBox('empty', 'No peer matches “' + search.value.trim() + '”.'));
        return;
      }
      const hasExpiry = peers.some((p) => 'expires_at' in p);
      const head = ['Name', 'Addresses', 'Status', 'Last handshake', 'Traffic', 'Endpoint'];
      if (hasExpiry) head.push('Expires');
      head.push('Actions');
      // A registry may hold 100,000 peers: draw the first rows only.
      const rows = shown.slice(0, MAX_ROWS);
      const table = el('table', { id: 'peer-table' },
        el('thead', null, el('tr', null, head.map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', null, rows.map((p) => peerRow(p, hasExpiry))));
      if (shown.length > rows.length) {
        region.replaceChildren(table, el('p', { class: 'muted', text: 'Showing the first ' + rows.length + ' of ' + shown.length + ' peers: search to narrow the list.' }));
      } else {
        region.replaceChildren(table);
      }
    }

    function isOnline(p) {
      if (typeof p.online === 'boolean') return p.online;
      return !!p.latest_handshake && Date.now() - new Date(p.latest_handshake).getTime() < 180000;
    }

    function peerRow(p, hasExpiry) {
      const status = [p.enabled ? badge('enabled', 'ok') : badge('disabled', 'bad'), ' ',
        isOnline(p) ? badge('online', 'ok') : badge('offline')];
      if (p.expired) status.push(' ', badge('expired', 'warn'));
      const toggle = el('button', {
        type: 'button', class: 'small secondary',
        'aria-label': (p.enabled ? 'Disable ' : 'Enable ') + p.name,
        'data-action': p.enabled ? 'disable' : 'enable',
        text: p.enabled ? 'Disable' : 'Enable',
      });
      toggle.addEventListener('click', busy(toggle, '…', async () => {
        try {
          await api('PATCH', '/v1/peers/' + encodeURIComponent(p.name), { enabled: !p.enabled });
          flash('Peer ' + p.name + (p.enabled ? ' disabled: it keeps its address and is off the interface.' : ' enabled.'));
          await load();
        } catch (e) {
          flash(errText(e), true);
        }
      }));
      const del = el('button', { type: 'button', class: 'small danger', 'aria-label': 'Delete ' + p.name, 'data-action': 'delete', text: 'Delete' });
      del.addEventListener('click', async () => {
        const ok = await confirmDialog('Delete peer ' + p.name + '?',
          'Its address is freed and its client can no longer connect. This cannot be undone.', 'Delete peer');
        if (!ok) {
          del.focus();
          return;
        }
        try {
          await api('DELETE', '/v1/peers/' + encodeURIComponent(p.name));
          flash('Peer ' + p.name + ' deleted.');
          await load();
          search.focus();
        } catch (e) {
          flash(errText(e), true);
        }
      });
      const cells = [
        td('Name', el('strong', { class: 'peer-name', text: p.name }), el('br'), el('span', { class: 'mono muted', title: p.public_key, text: p.public_key.slice(0, 12) + '…' })),
        td('Addresses', el('span', { class: 'mono', text: list(p.addresses) }), p.allowed_ips && p.allowed_ips.length ? [el('br'), el('span', { class: 'mono muted', text: 'routes ' + list(p.allowed_ips) })] : null),
        td('Status', status),
        td('Last handshake', el('span', { title: when(p.latest_handshake), text: ago(p.latest_handshake) })),
        td('Traffic', '↓ ' + bytes(p.rx_bytes) + ' ↑ ' + bytes(p.tx_bytes)),
        td('Endpoint', el('span', { class: 'mono', text: p.endpoint || '—' })),
      ];
      if (hasExpiry) cells.push(td('Expires', p.expires_at ? when(p.expires_at) : 'never'));
      cells.push(td('Actions', toggle, del));
      cells[cells.length - 1].className = 'actions-cell';
      return el('tr', { 'data-peer': p.name }, cells);
    }

    async function load() {
      try {
        const res = await api('GET', '/v1/peers');
        peers = res.peers || [];
        refreshErr.replaceChildren();
        render();
      } catch (e) {
        if (peers === null) region.replaceChildren(errorBox(e, load));
        else refreshErr.replaceChildren(stateBox('error', 'Refresh failed: ' + errText(e) + ' (showing the last list).'));
      }
    }

    search.addEventListener('input', render);
    const refresh = el('button', { type: 'button', class: 'secondary', text: 'Refresh' });
    refresh.addEventListener('click', busy(refresh, 'Refreshing…', load));
    main.append(
      el('h1', { text: 'Peers' }),
      el('div', { class: 'toolbar' }, search, el('a', { class: 'button', href: '#/new', text: 'New peer' }), refresh),
      count, refreshErr, region);
    // Refresh every 5 s; large registries less often (the list is sent
    // whole).
    poll(load, () => (peers && peers.length > 2000 ? 30000 : 5000));
  }

  function pageNew(main) {
    const name = el('input', { type: 'text', id: 'new-name', name: 'name', required: true, maxlength: '64', autocomplete: 'off', spellcheck: 'false' });
    const pub = el('input', { type: 'text', id: 'new-pubkey', name: 'public_key', autocomplete: 'off', spellcheck: 'false' });
    const routes = el('input', { type: 'text', id: 'new-routes', name: 'allowed_ips', autocomplete: 'off', spellcheck: 'false' });
    const psk = el('input', { type: 'checkbox', id: 'new-psk', checked: true });
    const enabled = el('input', { type: 'checkbox', id: 'new-enabled', checked: true });
    const submit = el('button', { type: 'submit', id: 'new-submit', text: 'Create peer' });
    const errors = el('div', { id: 'new-error' });
    const result = el('div', { id: 'new-result' });
    const form = el('form', { class: 'stack', id: 'new-form' },
      el('label', { for: 'new-name' }, 'Name', el('span', { class: 'hint', text: 'Letters, digits and . _ - @ +, up to 64 characters, e.g. alice-laptop.' }), name),
      el('label', { for: 'new-pubkey' }, 'Public key (optional)', el('span', { class: 'hint', text: 'Leave empty to have a key pair made now: the complete config, private key included, is shown once below and stored nowhere.' }), pub),
      el('label', { for: 'new-routes' }, 'Routes behind the peer (optional)', el('span', { class: 'hint', text: 'Comma-separated CIDRs for site-to-site setups, e.g. 192.168.50.0/24.' }), routes),
      el('label', { class: 'check', for: 'new-psk' }, psk, 'Preshared key (extra post-quantum protection)'),
      el('label', { class: 'check', for: 'new-enabled' }, enabled, 'Enabled'),
      el('div', { class: 'actions left' }, submit), errors);

    form.addEventListener('submit', busy(submit, 'Creating…', async () => {
      errors.replaceChildren();
      const body = { name: name.value.trim(), enabled: enabled.checked };
      if (pub.value.trim()) body.public_key = pub.value.trim();
      if (!psk.checked) body.preshared_key = '';
      if (routes.value.trim()) body.allowed_ips = splitList(routes.value);
      try {
        const res = await api('POST', '/v1/peers', body);
        form.hidden = true;
        showCreated(res);
      } catch (e) {
        errors.replaceChildren(stateBox('error', errText(e)));
        name.focus();
      }
    }));

    function showCreated(res) {
      const done = el('button', { type: 'button', id: 'new-done', text: 'Done' });
      const another = el('button', { type: 'button', class: 'secondary', text: 'Create another' });
      const card = el('div', { class: 'card' },
        el('h2', { text: 'Peer ' + res.name + ' created' }),
        el('dl', { class: 'kv' },
          el('dt', { text: 'Addresses' }), el('dd', { class: 'mono', text: list(res.addresses) }),
          el('dt', { text: 'Public key' }), el('dd', { class: 'mono', text: res.public_key })));
      if (res.config) {
        const config = res.config;
        const urls = [];
        state.cleanup.push(() => urls.forEach((u) => URL.revokeObjectURL(u)));
        const file = res.name.replace(/[^A-Za-z0-9_=+.-]/g, '_').slice(0, 15) + '.conf';
        const confURL = URL.createObjectURL(new Blob([config], { type: 'text/plain' }));
        urls.push(confURL);
        const qrBox = el('div', { id: 'new-qr-box' }, stateBox('loading', 'Rendering the QR code…'));
        card.append(
          el('p', { class: 'warning', id: 'new-once', text: 'Shown once: this config holds the private key, which is stored nowhere. Scan the QR code with the WireGuard app or download the file now; leaving this page discards it.' }),
          el('div', { class: 'once' },
            el('pre', { id: 'new-config', tabindex: '0', 'aria-label': 'Client config' }, config),
            qrBox),
          el('div', { class: 'actions left' },
            el('a', { class: 'button', id: 'new-download', href: confURL, download: file, text: 'Download ' + file })));
        api('POST', '/v1/qr', { text: config }).then((blob) => {
          const u = URL.createObjectURL(blob);
          urls.push(u);
          qrBox.replaceChildren(el('img', { id: 'new-qr', src: u, alt: 'QR code of the config of ' + res.name, width: '320', height: '320' }));
        }, (e) => {
          qrBox.replaceChildren(stateBox('error', 'QR code unavailable: ' + errText(e) + '. The config above is complete.'));
        });
      } else {
        card.append(el('p', { text: 'The peer uses the public key you gave, so this node has no private key to show. ' },
          el('a', { href: '/v1/peers/' + encodeURIComponent(res.name) + '/config', download: res.name + '.conf', text: 'Download its config' }),
          ' and fill in the private key on the device.'));
      }
      card.append(el('div', { class: 'actions left' }, done, another));
      done.addEventListener('click', () => { location.hash = '#/peers'; });
      another.addEventListener('click', () => route());
      result.replaceChildren(card);
      done.focus();
    }

    main.append(el('h1', { text: 'New peer' }), form, result);
    name.focus();
  }

  function pageCluster(main) {
    const summary = el('div', { id: 'cluster-summary' }, stateBox('loading', 'Loading the cluster…'));
    const nodesBox = el('div', { id: 'cluster-nodes' });
    const updated = el('p', { class: 'muted', id: 'cluster-updated', 'aria-live': 'off' });
    const refreshErr = el('div', { id: 'cluster-error' });
    const target = el('select', { id: 'handover-to' }, el('option', { value: '', text: 'any healthy follower' }));
    const handover = el('button', { type: 'button', id: 'handover', class: 'danger', text: 'Hand leadership over' });
    const handoverResult = el('div', { id: 'handover-result', 'aria-live': 'polite' });
    let last = null;

    async function load() {
      try {
        const st = await api('GET', '/v1/cluster');
        last = st;
        refreshErr.replaceChildren();
        render(st);
        updated.textContent = 'Refreshes every 2 seconds. Last update ' + new Date().toLocaleTimeString() + ' from node ' + (state.node || '?') + '.';
      } catch (e) {
        if (!last) summary.replaceChildren(errorBox(e, load));
        else refreshErr.replaceChildren(stateBox('error', 'Refresh failed: ' + errText(e) + ' Showing the last answer; retrying.'));
      }
    }

    function render(st) {
      const nodes = st.nodes || [];
      const reachable = nodes.filter((n) => n.reachable);
      const digests = new Set(reachable.filter((n) => n.state_digest).map((n) => n.state_index + '/' + n.state_digest));
      let health;
      if (!st.leader_id) health = stateBox('error', 'No leader: writes wait until a majority of the nodes reach each other.');
      else if (reachable.length < nodes.length) health = el('p', { class: 'warning', text: (nodes.length - reachable.length) + ' of ' + nodes.length + ' nodes unreachable. The cluster keeps working while a majority is up.' });
      else if (digests.size > 1) health = el('p', { class: 'warning', text: 'The nodes report different states: a change is being replicated, or a node is behind. Check again in a moment.' });
      else health = el('p', { class: 'muted', text: 'Healthy: every node is reachable and holds the same state.' });
      summary.replaceChildren(
        el('dl', { class: 'kv card' },
          el('dt', { text: 'Leader' }), el('dd', { id: 'cluster-leader', text: st.leader_id || 'none' }),
          el('dt', { text: 'VIP holder' }), el('dd', { id: 'cluster-vip', text: st.vip_holder || 'none' }),
          el('dt', { text: 'Term' }), el('dd', { text: String(st.term) }),
          el('dt', { text: 'Cluster version' }), el('dd', { text: String(st.cluster_version || 1) })),
        health);
      nodesBox.replaceChildren(el('table', { id: 'node-table' },
        el('thead', null, el('tr', null, ['Node', 'Role', 'VIP', 'Interface', 'Version', 'Applied', 'State digest', 'API address'].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', null, nodes.map((n) => el('tr', { 'data-node': n.node_id },
          td('Node', el('strong', { text: n.node_id }), n.node_id === state.node ? [' ', badge('this node')] : null),
          td('Role', !n.reachable ? badge('unreachable', 'bad') : n.role === 'leader' ? badge('leader', 'lead') : badge(n.role || '?'), n.error ? [el('br'), el('span', { class: 'muted', text: n.error.replace(/^unreachable: /, '') })] : null),
          td('VIP', n.vip_holder ? badge('yes', 'ok') : 'no'),
          td('Interface', n.reachable ? (n.interface_up ? badge('up', 'ok') : 'down') + (n.dataplane ? ' (' + n.dataplane + ')' : '') : '—'),
          td('Version', n.version ? n.version + (n.protocol ? ' · protocol ' + n.protocol : '') : '—'),
          td('Applied', n.reachable ? String(n.applied_index) : '—'),
          td('State digest', el('span', { class: 'mono', title: n.state_digest || '', text: n.state_digest ? n.state_digest.slice(0, 12) + ' @' + n.state_index : '—' })),
          td('API address', el('span', { class: 'mono', text: n.api_addr || '' })))))));
      const keep = target.value;
      const followers = nodes.filter((n) => n.reachable && n.role === 'follower' && n.voter !== false).map((n) => n.node_id);
      target.replaceChildren(el('option', { value: '', text: 'any healthy follower' }),
        ...followers.map((id) => el('option', { value: id, text: id })));
      if (followers.includes(keep)) target.value = keep;
      handover.disabled = !st.leader_id || followers.length === 0;
    }

    handover.addEventListener('click', async () => {
      const to = target.value;
      const ok = await confirmDialog('Hand leadership over' + (to ? ' to ' + to : '') + '?', RUNBOOK_HANDOVER_WARNING, 'Hand over');
      if (!ok) {
        handover.focus();
        return;
      }
      handoverResult.replaceChildren(stateBox('loading', 'Handing leadership over…'));
      try {
        const res = await api('POST', '/v1/cluster/transfer-leader', to ? { to } : {});
        handoverResult.replaceChildren(el('p', { class: 'flash', text: 'Leader is now ' + res.leader_id + '.' }));
        await load();
      } catch (e) {
        handoverResult.replaceChildren(stateBox('error', errText(e)));
      }
      handover.focus();
    });

    main.append(
      el('h1', { text: 'Cluster' }),
      summary, refreshErr, nodesBox, updated,
      el('section', { class: 'card', 'aria-labelledby': 'handover-title' },
        el('h2', { id: 'handover-title', text: 'Hand leadership over' }),
        el('p', { class: 'warning', id: 'handover-warning', text: RUNBOOK_HANDOVER_WARNING }),
        el('p', { class: 'muted', text: 'Use it before maintenance on the leader (runbook, section 1). It returns once the new leader serves the VIP.' }),
        el('div', { class: 'toolbar' }, el('label', { for: 'handover-to' }, 'To', target), handover),
        handoverResult));
    poll(load, 2000);
  }

  function secretBox(id, title, secret, note) {
    const code = el('code', { id, class: 'mono', text: secret });
    const copy = el('button', { type: 'button', class: 'small secondary', text: 'Copy' });
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(secret);
        flash('Copied to the clipboard.');
      } catch (e) {
        flash('The browser refused the clipboard: select the text and copy it.', true);
      }
    });
    const hide = el('button', { type: 'button', class: 'small secondary', text: 'Hide' });
    const box = el('div', { class: 'card' }, el('h2', { text: title }), el('p', { class: 'warning', text: note }),
      el('pre', null, code), el('div', { class: 'actions left' }, copy, hide));
    hide.addEventListener('click', () => box.remove());
    return box;
  }

  function pageTokens(main) {
    const tokensBox = el('div', { id: 'tokens' }, stateBox('loading', 'Loading admin tokens…'));
    const created = el('div', { id: 'token-created' });
    const tokName = el('input', { type: 'text', id: 'token-name', maxlength: '64', autocomplete: 'off', spellcheck: 'false' });
    const create = el('button', { type: 'submit', id: 'token-create', text: 'Create admin token' });
    const createErr = el('div');
    const createForm = el('form', { class: 'stack' },
      el('label', { for: 'token-name' }, 'Name (optional)', el('span', { class: 'hint', text: 'Who or what uses it, e.g. ci-deploy.' }), tokName),
      el('div', { class: 'actions left' }, create), createErr);
    const joinBox = el('div', { id: 'join-token' });
    const showJoin = el('button', { type: 'button', class: 'secondary', id: 'join-show', text: 'Show join token' });
    const rotate = el('button', { type: 'button', class: 'danger', id: 'join-rotate', text: 'Rotate join token' });

    async function load() {
      try {
        const res = await api('GET', '/v1/cluster/admin-tokens');
        const toks = res.tokens || [];
        if (toks.length === 0) {
          tokensBox.replaceChildren(stateBox('empty', 'No admin tokens.'));
          return;
        }
        tokensBox.replaceChildren(el('table', { id: 'token-table' },
          el('thead', null, el('tr', null, ['ID', 'Name', 'Created', 'Actions'].map((h) => el('th', { scope: 'col', text: h })))),
          el('tbody', null, toks.map((t) => {
            const own = state.session && t.id === state.session.token_id;
            const revoke = el('button', { type: 'button', class: 'small danger', 'aria-label': 'Revoke ' + t.id, text: 'Revoke' });
            revoke.addEventListener('click', async () => {
              const ok = await confirmDialog('Revoke admin token ' + t.id + '?',
                'Anything using it, and every console session opened with it, stops working at once.' + (own ? ' This is the token of your own session: you will be logged out.' : ''),
                'Revoke');
              if (!ok) {
                revoke.focus();
                return;
              }
              try {
                await api('DELETE', '/v1/cluster/admin-tokens/' + encodeURIComponent(t.id));
                flash('Admin token ' + t.id + ' revoked.');
                if (own) sessionEnded('You revoked the token of this session. Log in with another token.');
                else await load();
              } catch (e) {
                flash(errText(e), true);
              }
            });
            return el('tr', { 'data-token': t.id },
              td('ID', el('span', { class: 'mono', text: t.id }), own ? [' ', badge('this session')] : null),
              td('Name', t.name || '—'),
              td('Created', when(t.created_at)),
              td('Actions', revoke));
          }))));
      } catch (e) {
        tokensBox.replaceChildren(errorBox(e, load));
      }
    }

    createForm.addEventListener('submit', busy(create, 'Creating…', async () => {
      createErr.replaceChildren();
      try {
        const body = tokName.value.trim() ? { name: tokName.value.trim() } : {};
        const res = await api('POST', '/v1/cluster/admin-tokens', body);
        tokName.value = '';
        created.replaceChildren(secretBox('token-secret', 'Admin token ' + res.id, res.token,
          'Shown once: copy it now. The cluster keeps only its hash.'));
        await load();
      } catch (e) {
        createErr.replaceChildren(stateBox('error', errText(e)));
      }
    }));

    showJoin.addEventListener('click', busy(showJoin, 'Loading…', async () => {
      try {
        const res = await api('GET', '/v1/cluster/token');
        joinBox.replaceChildren(secretBox('join-secret', 'Join token', res.token, 'Anyone holding it can add a server to the cluster: hand it only to whoever sets up a new node.'));
      } catch (e) {
        joinBox.replaceChildren(stateBox('error', errText(e)));
      }
    }));

    rotate.addEventListener('click', async () => {
      const ok = await confirmDialog('Rotate the join token?',
        'A new join token replaces the current one, which stops working at once. Running members are not affected; nodes not yet joined need the new token.',
        'Rotate');
      if (!ok) {
        rotate.focus();
        return;
      }
      try {
        const res = await api('POST', '/v1/cluster/token/rotate');
        joinBox.replaceChildren(secretBox('join-secret', 'New join token', res.token, 'The previous join token no longer works.'));
        flash('Join token rotated.');
      } catch (e) {
        joinBox.replaceChildren(stateBox('error', errText(e)));
      }
    });

    main.append(
      el('h1', { text: 'Tokens' }),
      el('h2', { text: 'Admin tokens' }),
      el('p', { class: 'muted', text: 'Admin tokens open the API, the CLI and this console. Each node also holds one of its own (node-…).' }),
      tokensBox, created,
      el('section', { class: 'card' }, el('h2', { text: 'New admin token' }), createForm),
      el('section', { class: 'card' },
        el('h2', { text: 'Join token' }),
        el('p', { class: 'muted', text: 'New servers join with it: raftguard server --join ADDR --token TOKEN.' }),
        el('div', { class: 'actions left' }, showJoin, rotate), joinBox));
    load();
  }

  function pageSettings(main) {
    const box = el('div', { id: 'settings' }, stateBox('loading', 'Loading settings…'));

    async function load() {
      let st;
      try {
        st = await api('GET', '/v1/cluster/settings');
      } catch (e) {
        box.replaceChildren(errorBox(e, load));
        return;
      }
      const field = (id, label, hint, value, type) => {
        const input = el('input', { type: type || 'text', id, value: value, autocomplete: 'off', spellcheck: 'false' });
        return [el('label', { for: id }, label, el('span', { class: 'hint', text: hint }), input), input];
      };
      const [lEndpoint, endpoint] = field('set-endpoint', 'Endpoint', 'host:port written into client configs.', st.endpoint);
      const [lAllowed, allowed] = field('set-allowed', 'Client allowed IPs', 'What clients route through the tunnel, comma-separated, e.g. 0.0.0.0/0, ::/0.', list(st.client_allowed_ips));
      const [lDNS, dns] = field('set-dns', 'Client DNS', 'DNS servers written into client configs, comma-separated; empty for none.', list(st.client_dns));
      const [lMTU, mtu] = field('set-mtu', 'MTU', '1280–9000.', String(st.mtu), 'number');
      const [lKeep, keep] = field('set-keepalive', 'Persistent keepalive (seconds)', '0 turns it off.', String(st.keepalive), 'number');
      const nat = el('input', { type: 'checkbox', id: 'set-nat', checked: !!st.nat });
      const lNAT = 'nat' in st ? el('label', { class: 'check', for: 'set-nat' }, nat, 'NAT: masquerade the pools\' traffic leaving the leader (road warriors reaching the internet)') : null;
      const save = el('button', { type: 'submit', id: 'settings-save', text: 'Save changes' });
      const result = el('div', { 'aria-live': 'polite' });
      const form = el('form', { class: 'stack card', id: 'settings-form' }, el('h2', { text: 'Change' }), lEndpoint, lAllowed, lDNS, lMTU, lKeep, lNAT, el('div', { class: 'actions left' }, save), result);
      form.addEventListener('submit', busy(save, 'Saving…', async () => {
        const patch = {};
        if (endpoint.value.trim() !== st.endpoint) patch.endpoint = endpoint.value.trim();
        if (list(splitList(allowed.value)) !== list(st.client_allowed_ips)) patch.client_allowed_ips = splitList(allowed.value);
        if (list(splitList(dns.value)) !== list(st.client_dns)) patch.client_dns = splitList(dns.value);
        if (Number(mtu.value) !== st.mtu) patch.mtu = Number(mtu.value);
        if (Number(keep.value) !== st.keepalive) patch.keepalive = Number(keep.value);
        if ('nat' in st && nat.checked !== !!st.nat) patch.nat = nat.checked;
        if (Object.keys(patch).length === 0) {
          result.replaceChildren(el('p', { class: 'muted', text: 'Nothing changed.' }));
          return;
        }
        try {
          await api('PATCH', '/v1/cluster/settings', patch);
          flash('Settings saved. Client configs handed out before keep their old values.');
          await load();
        } catch (e) {
          result.replaceChildren(stateBox('error', errText(e)));
        }
      }));
      box.replaceChildren(
        el('dl', { class: 'kv card', id: 'settings-fixed' },
          el('dt', { text: 'Server public key' }), el('dd', { class: 'mono', text: st.public_key }),
          el('dt', { text: 'Listen port' }), el('dd', { text: String(st.listen_port) }),
          el('dt', { text: 'VIPs' }), el('dd', { class: 'mono', text: list(st.vips) }),
          el('dt', { text: 'Pool' }), el('dd', { class: 'mono', text: st.pool }),
          el('dt', { text: 'IPv6 pool' }), el('dd', { class: 'mono', text: st.pool6 || 'none' })),
        el('p', { class: 'muted', text: 'The values above are fixed at bootstrap. The ones below change for the whole cluster at once, validated as at bootstrap (raftguard cluster settings set does the same).' }),
        form);
    }

    main.append(el('h1', { text: 'Settings' }), box);
    load();
  }

  // ---- routing ----

  const pages = { peers: pagePeers, new: pageNew, cluster: pageCluster, tokens: pageTokens, settings: pageSettings };

  function route() {
    runCleanup();
    $('flash').hidden = true;
    if (!state.csrf) {
      showLogin();
      return;
    }
    let name = location.hash.replace(/^#\/?/, '');
    if (!pages[name]) name = 'peers';
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const main = $('main');
    main.replaceChildren();
    document.title = (name === 'new' ? 'New peer' : name[0].toUpperCase() + name.slice(1)) + ' · raftguard';
    pages[name](main);
  }

  async function boot() {
    $('logout').addEventListener('click', logout);
    window.addEventListener('hashchange', route);
    try {
      setSession(await api('GET', '/v1/session'));
    } catch (e) {
      clearSession();
    }
    route();
  }

  document.addEventListener('DOMContentLoaded', boot);
})();

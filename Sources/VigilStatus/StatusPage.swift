/// `GET /`: the live status page, one self-contained document.
///
/// No external script, style, font or image (the Content-Security-Policy forbids them, so it
/// works offline and a hostile close reason cannot load anything): the page fetches the API's
/// own JSON (`/status`, `/connections`, `/closes`, `/history`, `/targets`) every two seconds and
/// follows `/closes/stream`. Every value it shows is set with `textContent`, never parsed as
/// HTML: client names and close reasons come from peers. With `status_token_file`, open it as
/// `/#token=…`: the fragment never leaves the browser, and the page sends it as a bearer token.
enum StatusPage {
    static let securityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static var response: StatusResponse {
        var response = StatusResponse(status: .ok, contentType: "text/html; charset=utf-8", body: body)
        response.headers = [
            ("Content-Security-Policy", securityPolicy), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]
        return response
    }

    static let body = Array(html.utf8)

    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>vigild status</title>
        <style>
        :root { --fg: #1b1f23; --muted: #5b636b; --line: #d0d7de; --bg: #fff; --panel: #f6f8fa;
          --normal: #1a7f37; --going_away: #0969da; --abnormal: #cf222e; --eof: #9a6700; --error: #8250df; }
        @media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9da7b1; --line: #30363d; --bg: #0d1117; --panel: #161b22;
          --normal: #3fb950; --going_away: #58a6ff; --abnormal: #f85149; --eof: #d29922; --error: #bc8cff; } }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
        header { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: baseline; padding: .8em 1.2em; border-bottom: 1px solid var(--line); background: var(--panel); }
        header h1 { font-size: 1.2em; margin: 0; }
        main { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; padding: 1em 1.2em; }
        section { border: 1px solid var(--line); border-radius: 6px; padding: .6em .9em; min-width: 0; }
        section.wide { grid-column: 1 / -1; }
        h2 { font-size: 1em; margin: .2em 0 .6em; }
        table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
        th, td { text-align: left; padding: .2em .5em; border-bottom: 1px solid var(--line); white-space: nowrap; }
        td.num, th.num { text-align: right; }
        td.reason { white-space: normal; word-break: break-all; max-width: 24em; }
        th[data-sort] { cursor: pointer; user-select: none; }
        th[data-sort]:after { content: " \2195"; color: var(--muted); }
        th.sorted-asc:after { content: " \2191"; } th.sorted-desc:after { content: " \2193"; }
        .kind { font-weight: 600; } .kind:before { content: ""; display: inline-block; width: .7em; height: .7em; margin-right: .35em; border: 1px solid var(--fg); }
        .kind-normal:before { background: var(--normal); } .kind-going_away:before { background: var(--going_away); }
        .kind-abnormal:before { background: var(--abnormal); } .kind-eof:before { background: var(--eof); } .kind-error:before { background: var(--error); }
        .muted { color: var(--muted); } .bad { color: var(--abnormal); font-weight: 600; }
        .scroll { max-height: 28em; overflow: auto; }
        input[type=search] { width: 100%; max-width: 30em; margin-bottom: .5em; padding: .3em; font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); }
        svg { width: 100%; height: auto; display: block; } svg text { fill: var(--muted); font-size: 17px; } #causes-chart g text { fill: var(--fg); }
        .bar { fill: var(--going_away); } #error { padding: .5em 1.2em; }
        </style>
        </head>
        <body data-updates="0">
        <header>
          <h1>vigild</h1>
          <span>state <b id="state">…</b></span>
          <span>up <b id="uptime">…</b></span>
          <span>connections <b id="connections-now">…</b></span>
          <span>pending handshakes <b id="pending">…</b></span>
          <span>closes <b id="closes-total">…</b></span>
          <span class="muted">updated <span id="updated">never</span> · closes <span id="feed">polling</span></span>
        </header>
        <div id="error" class="bad" hidden></div>
        <main>
          <section>
            <h2>Closes by kind</h2>
            <table id="kinds"><thead><tr><th>kind</th><th class="num">last minute</th><th class="num">last hour</th><th class="num">since start</th></tr></thead><tbody></tbody></table>
            <h2 style="margin-top:1em">Causes in the last hour</h2>
            <table id="causes"><thead><tr><th>cause</th><th class="num">closes</th></tr></thead><tbody></tbody></table>
          </section>
          <section>
            <h2>Connections, last hour (per minute)</h2>
            <svg id="connections-chart" viewBox="0 0 600 150" role="img" aria-label="open connections per minute"></svg>
            <h2>Closes per minute, by kind</h2>
            <svg id="closes-chart" viewBox="0 0 600 150" role="img" aria-label="closes per minute by kind"></svg>
            <div id="closes-legend" class="muted"></div>
            <h2>Closes per minute, by cause</h2>
            <svg id="causes-chart" viewBox="0 0 600 34" role="img" aria-label="closes per minute by cause"></svg>
          </section>
          <section>
            <h2>Ping round trip, live connections</h2>
            <table id="rtt"><thead><tr><th>RTT</th><th class="num">connections</th><th style="width:55%"></th></tr></thead><tbody></tbody></table>
          </section>
          <section id="targets-section" hidden>
            <h2>Monitor targets</h2>
            <div class="scroll"><table id="targets"><thead><tr><th>target</th><th>state</th><th>since</th><th class="num">RTT ms</th><th class="num">up 1h</th><th>last close</th><th>url</th></tr></thead><tbody></tbody></table></div>
          </section>
          <section id="pairs-section" class="wide" hidden>
            <h2>Proxied pairs</h2>
            <div class="scroll"><table id="pairs"><thead><tr><th class="num">pair</th><th>client peer</th><th class="num">client RTT</th><th>upstream</th><th>route / member</th><th class="num">upstream RTT</th><th>age</th></tr></thead><tbody></tbody></table></div>
          </section>
          <section class="wide">
            <h2>Live connections <span class="muted" id="connections-shown"></span></h2>
            <input type="search" id="filter" placeholder="filter: any text, or key=value (client=kiosk, leg=upstream)">
            <div class="scroll"><table id="connections"><thead><tr>
              <th class="num" data-sort="id">id</th><th data-sort="peer">peer</th><th data-sort="client">client</th><th data-sort="path">path</th><th data-sort="route">route</th>
              <th data-sort="leg">leg</th><th data-sort="target">target</th><th class="num" data-sort="age">age</th><th class="num" data-sort="idle">idle</th>
              <th class="num" data-sort="rtt_ms">RTT ms</th><th class="num" data-sort="app_rtt_ms">app RTT ms</th>
              <th class="num" data-sort="messages_in">in</th><th class="num" data-sort="messages_out">out</th></tr></thead><tbody></tbody></table></div>
          </section>
          <section class="wide">
            <h2>Recent closes <span class="muted" id="closes-shown"></span></h2>
            <div class="scroll"><table id="closes"><thead><tr><th class="num">seq</th><th>closed</th><th>kind</th><th class="num">code</th><th>cause</th>
              <th>by</th><th>client</th><th>peer</th><th>leg</th><th>route</th><th class="num">lasted</th><th>reason</th></tr></thead><tbody></tbody></table></div>
          </section>
        </main>
        <script>
        "use strict";
        const KINDS = ["normal", "going_away", "abnormal", "eof", "error"];
        const RTT_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 1000];
        // Not URLSearchParams: it reads "+" as a space, and base64 tokens hold "+".
        const tokenMatch = location.hash.match(/(?:^#|&)token=([^&]*)/);
        const token = tokenMatch ? decodeURIComponent(tokenMatch[1]) : null;
        const headers = token ? {Authorization: "Bearer " + token} : {};
        const state = {connections: [], closes: [], sort: {key: "id", dir: 1}, filter: "", streaming: false};
        const $ = id => document.getElementById(id);

        async function api(path) {
          const response = await fetch(path, {headers, cache: "no-store"});
          if (!response.ok) {
            const text = await response.text();
            throw new Error(path + ": HTTP " + response.status + (response.status === 401 ? " (open this page as /#token=YOUR_TOKEN)" : "") + " " + text.slice(0, 200));
          }
          return response.json();
        }

        function cell(row, text, className) {
          const td = document.createElement("td");
          td.textContent = text === null || text === undefined ? "–" : String(text);
          if (className) td.className = className;
          row.appendChild(td);
          return td;
        }
        function kindCell(row, kind) { return cell(row, kind, "kind kind-" + kind); }
        function fill(tbody, items, render) {
          const rows = items.map(item => { const tr = document.createElement("tr"); render(tr, item); return tr; });
          tbody.replaceChildren(...rows);
        }
        function seconds(s) {
          s = Math.max(0, Math.round(s));
          if (s < 60) return s + "s";
          if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
          if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
          return Math.floor(s / 86400) + "d" + Math.floor(s % 86400 / 3600) + "h";
        }
        function ms(value) { return value === null || value === undefined ? null : value < 10 ? value.toFixed(2) : value.toFixed(0); }
        function since(timestamp) { return (Date.now() - Date.parse(timestamp)) / 1000; }
        function svgElement(name, attributes, text) {
          const element = document.createElementNS("http://www.w3.org/2000/svg", name);
          for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
          if (text !== undefined) element.textContent = text;
          return element;
        }

        function renderStatus(status, history) {
          $("state").textContent = status.state;
          $("state").className = status.state === "ready" ? "" : "bad";
          $("uptime").textContent = seconds(status.uptime_s);
          $("connections-now").textContent = status.connections;
          $("pending").textContent = status.handshakes_pending;
          $("closes-total").textContent = status.closes_total;
          const hour = Object.fromEntries(KINDS.map(kind => [kind, 0]));
          const causes = {};
          for (const minute of history.minutes) {
            for (const kind of KINDS) hour[kind] += minute.closes[kind] || 0;
            for (const [cause, count] of Object.entries(minute.causes)) causes[cause] = (causes[cause] || 0) + count;
          }
          fill($("kinds").tBodies[0], KINDS, (tr, kind) => {
            tr.dataset.kind = kind;
            kindCell(tr, kind);
            cell(tr, status.closes_last_minute[kind], "num").id = "kind-minute-" + kind;
            cell(tr, hour[kind], "num").id = "kind-hour-" + kind;
            cell(tr, status.closes[kind], "num").id = "kind-total-" + kind;
          });
          const causeRows = Object.entries(causes).sort((a, b) => b[1] - a[1]);
          fill($("causes").tBodies[0], causeRows.length ? causeRows : [["none", 0]], (tr, [cause, count]) => {
            tr.dataset.cause = cause;
            cell(tr, cause);
            cell(tr, count, "num").id = "cause-hour-" + cause;
          });
          drawConnections(history.minutes);
          drawCloses(history.minutes);
          drawCauses(history.minutes, causeRows.map(([cause]) => cause));
        }

        // Sixty one-minute slots, now at the right; a vigild younger than an hour fills the right end.
        const SLOT = 555 / 60;
        function slotX(slot) { return 40 + slot * SLOT; }
        function axes(svg, maximum, minutes) {
          svg.appendChild(svgElement("line", {x1: 40, y1: 130, x2: 595, y2: 130, stroke: "currentColor", "stroke-opacity": 0.3}));
          svg.appendChild(svgElement("text", {x: 36, y: 14, "text-anchor": "end"}, String(maximum)));
          svg.appendChild(svgElement("text", {x: 36, y: 130, "text-anchor": "end"}, "0"));
          svg.appendChild(svgElement("text", {x: 40, y: 145}, "60 min ago"));
          svg.appendChild(svgElement("text", {x: 595, y: 145, "text-anchor": "end"}, "now"));
        }
        function drawConnections(minutes) {
          const svg = $("connections-chart");
          svg.replaceChildren();
          const maximum = Math.max(1, ...minutes.map(m => m.connections));
          axes(svg, maximum, minutes.length);
          const first = 60 - minutes.length;
          const x = i => slotX(first + i + 0.5), y = m => 130 - 116 * m.connections / maximum;
          const points = minutes.map((m, i) => x(i).toFixed(1) + "," + y(m).toFixed(1));
          svg.appendChild(svgElement("polyline", {points: points.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 2}));
          for (const [i, m] of minutes.entries()) {
            const dot = svgElement("circle", {cx: x(i), cy: y(m), r: 2.5, fill: "currentColor"});
            dot.appendChild(svgElement("title", {}, m.start.slice(11, 16) + " UTC: " + m.connections + " open, " + m.opened + " opened"));
            svg.appendChild(dot);
          }
        }
        function drawCloses(minutes) {
          const svg = $("closes-chart");
          svg.replaceChildren();
          // Patterns as well as colours: the kinds stay apart in grey scale and for colour-blind readers.
          const defs = svgElement("defs", {});
          const marks = {normal: "", going_away: "M0,8 L8,0", abnormal: "M0,0 L8,8 M0,8 L8,0", eof: "M4,0 L4,8", error: "M0,4 L8,4"};
          for (const kind of KINDS) {
            const pattern = svgElement("pattern", {id: "fill-" + kind, width: 8, height: 8, patternUnits: "userSpaceOnUse"});
            pattern.appendChild(svgElement("rect", {width: 8, height: 8, style: "fill: var(--" + kind + ")"}));
            if (marks[kind]) pattern.appendChild(svgElement("path", {d: marks[kind], stroke: "#fff", "stroke-width": 1.5}));
            defs.appendChild(pattern);
          }
          svg.appendChild(defs);
          const totals = minutes.map(m => KINDS.reduce((sum, kind) => sum + (m.closes[kind] || 0), 0));
          const maximum = Math.max(1, ...totals);
          axes(svg, maximum, minutes.length);
          const width = SLOT;
          for (const [index, m] of minutes.entries()) {
            const i = 60 - minutes.length + index;
            let y = 130;
            for (const kind of KINDS) {
              const count = m.closes[kind] || 0;
              if (!count) continue;
              const height = 116 * count / maximum;
              y -= height;
              const bar = svgElement("rect", {x: 40 + i * width + 1, y, width: Math.max(1, width - 2), height, fill: "url(#fill-" + kind + ")"});
              const causes = Object.entries(m.causes).map(([cause, n]) => n + " " + cause).join(", ");
              bar.appendChild(svgElement("title", {}, m.start.slice(11, 16) + " UTC: " + count + " " + kind + " (that minute's causes: " + causes + ")"));
              svg.appendChild(bar);
            }
          }
          const legend = $("closes-legend");
          legend.replaceChildren(...KINDS.map(kind => {
            const span = document.createElement("span");
            span.className = "kind kind-" + kind;
            span.style.marginRight = "1em";
            span.textContent = kind;
            return span;
          }));
        }

        // One row per cause seen in the hour, most frequent first, named with its count; a minute's
        // cell is darker the more closes it had, and its count is in the cell's tooltip and data-count.
        // Fourteen causes do not stack legibly in one bar chart; rows of their own do, without colour.
        function drawCauses(minutes, causes) {
          const svg = $("causes-chart");
          svg.replaceChildren();
          // A column of names on the left, then sixty one-minute cells, now at the right.
          const rowHeight = 24, top = 4, left = 235, cell = (595 - left) / 60;  // room for "app_pong_timeout 12345"
          svg.setAttribute("viewBox", "0 0 600 " + (top + Math.max(1, causes.length) * rowHeight + 24));
          if (!causes.length) {
            svg.appendChild(svgElement("text", {x: left, y: top + 16}, "no closes in the last hour"));
            return;
          }
          const maximum = Math.max(1, ...minutes.flatMap(m => Object.values(m.causes)));
          const first = 60 - minutes.length;
          for (const [row, cause] of causes.entries()) {
            const y = top + row * rowHeight;
            const group = svgElement("g", {"data-cause": cause});
            const total = minutes.reduce((sum, m) => sum + (m.causes[cause] || 0), 0);
            group.appendChild(svgElement("text", {x: left - 8, y: y + 15, "text-anchor": "end"}, cause + " " + total));
            group.appendChild(svgElement("rect", {x: left, y, width: 60 * cell, height: rowHeight - 3, fill: "currentColor", "fill-opacity": 0.05}));
            for (const [index, m] of minutes.entries()) {
              const count = m.causes[cause] || 0;
              if (!count) continue;
              const slot = svgElement("rect", {x: left + (first + index) * cell + 0.5, y, width: Math.max(1, cell - 1), height: rowHeight - 3,
                                                fill: "currentColor", "fill-opacity": (0.35 + 0.65 * count / maximum).toFixed(2),
                                                "data-count": count, "data-minute": m.start});
              slot.appendChild(svgElement("title", {}, m.start.slice(11, 16) + " UTC: " + count + " " + cause));
              group.appendChild(slot);
            }
            svg.appendChild(group);
          }
          const bottom = top + causes.length * rowHeight + 18;
          svg.appendChild(svgElement("text", {x: left, y: bottom}, "60 min ago"));
          svg.appendChild(svgElement("text", {x: 595, y: bottom, "text-anchor": "end"}, "now"));
        }

        function renderRTT(connections) {
          const counts = new Array(RTT_BUCKETS.length + 2).fill(0);
          for (const c of connections) {
            if (c.rtt_ms === null) { counts[counts.length - 1]++; continue; }
            const index = RTT_BUCKETS.findIndex(limit => c.rtt_ms < limit);
            counts[index === -1 ? RTT_BUCKETS.length : index]++;
          }
          const labels = RTT_BUCKETS.map((limit, i) => (i ? RTT_BUCKETS[i - 1] : 0) + "–" + limit + " ms")
            .concat(["≥ " + RTT_BUCKETS[RTT_BUCKETS.length - 1] + " ms", "not measured yet"]);
          const maximum = Math.max(1, ...counts);
          fill($("rtt").tBodies[0], labels.map((label, i) => [label, counts[i]]), (tr, [label, count]) => {
            cell(tr, label);
            cell(tr, count, "num");
            const td = cell(tr, "");
            const bar = document.createElement("div");
            bar.style.cssText = "height:.8em;background:var(--going_away);width:" + (100 * count / maximum) + "%";
            td.appendChild(bar);
          });
        }

        function connectionValue(c, key) {
          if (key === "age") return since(c.opened_at);
          if (key === "idle") return since(c.last_seen_at);
          return c[key];
        }
        function matchesFilter(c) {
          const filter = state.filter.trim();
          if (!filter) return true;
          return filter.split(/\s+/).every(term => {
            const equals = term.indexOf("=");
            if (equals > 0) return String(c[term.slice(0, equals)] ?? "") === term.slice(equals + 1);
            return Object.values(c).some(value => String(value ?? "").toLowerCase().includes(term.toLowerCase()));
          });
        }
        function renderConnections(list) {
          const {key, dir} = state.sort;
          const shown = list.connections.filter(matchesFilter).sort((a, b) => {
            const x = connectionValue(a, key), y = connectionValue(b, key);
            if (x === y) return a.id - b.id;
            if (x === null || x === undefined) return 1;
            if (y === null || y === undefined) return -1;
            return (x < y ? -1 : 1) * dir;
          });
          fill($("connections").tBodies[0], shown, (tr, c) => {
            tr.dataset.id = c.id;
            cell(tr, c.id, "num"); cell(tr, c.peer); cell(tr, c.client); cell(tr, c.path); cell(tr, c.route); cell(tr, c.leg); cell(tr, c.target);
            cell(tr, seconds(since(c.opened_at)), "num"); cell(tr, seconds(since(c.last_seen_at)), "num");
            cell(tr, ms(c.rtt_ms), "num"); cell(tr, ms(c.app_rtt_ms), "num"); cell(tr, c.messages_in, "num"); cell(tr, c.messages_out, "num");
          });
          $("connections-shown").textContent = "(" + shown.length + " shown of " + list.count +
            (list.count > list.connections.length ? "; the first " + list.connections.length + " loaded" : "") + ")";
          for (const th of document.querySelectorAll("#connections th[data-sort]")) {
            th.className = th.className.replace(/ ?sorted-\w+/g, "") + (th.dataset.sort === key ? (dir > 0 ? " sorted-asc" : " sorted-desc") : "");
          }
          const pairs = {};
          for (const c of list.connections) if (c.pair_id !== null) (pairs[c.pair_id] ||= {})[c.leg] = c;
          const pairList = Object.entries(pairs).map(([id, legs]) => ({id: Number(id), ...legs})).sort((a, b) => a.id - b.id);
          $("pairs-section").hidden = pairList.length === 0;
          fill($("pairs").tBodies[0], pairList, (tr, p) => {
            cell(tr, p.id, "num"); cell(tr, p.client?.peer); cell(tr, ms(p.client?.rtt_ms), "num");
            const leg = p.upstream || p.client;
            cell(tr, leg?.upstream); cell(tr, leg ? leg.route + " / " + leg.member : null); cell(tr, ms(p.upstream?.rtt_ms), "num");
            cell(tr, p.client ? seconds(since(p.client.opened_at)) : null);
          });
        }

        function renderTargets(list) {
          $("targets-section").hidden = list.targets.length === 0;
          fill($("targets").tBodies[0], list.targets, (tr, t) => {
            cell(tr, t.name + (t.critical ? " (critical)" : ""));
            cell(tr, t.state, t.state === "up" ? "" : "bad");
            cell(tr, t.since ? seconds(since(t.since)) + " ago" : null);
            cell(tr, ms(t.connection?.rtt_ms), "num");
            cell(tr, t.uptime_ratio_1h === null ? null : (100 * t.uptime_ratio_1h).toFixed(1) + " %", "num");
            cell(tr, t.last_close ? t.last_close.kind + "/" + t.last_close.cause : (t.last_dial_error ? t.last_dial_error.phase + ": " + t.last_dial_error.error : null));
            cell(tr, t.url);
          });
        }

        const MAX_CLOSES = 200;
        function addCloses(records) {
          const known = new Set(state.closes.map(r => r.seq));
          for (const record of records) if (!known.has(record.seq)) state.closes.push(record);
          state.closes.sort((a, b) => b.seq - a.seq);
          state.closes.length = Math.min(state.closes.length, MAX_CLOSES);
          fill($("closes").tBodies[0], state.closes, (tr, r) => {
            tr.dataset.seq = r.seq;
            cell(tr, r.seq, "num"); cell(tr, r.closed_at.slice(11, 23)); kindCell(tr, r.kind); cell(tr, r.code, "num");
            cell(tr, r.cause); cell(tr, r.initiator); cell(tr, r.client); cell(tr, r.peer); cell(tr, r.leg + (r.target ? " " + r.target : ""));
            cell(tr, r.route ? r.route + (r.member ? " / " + r.member : "") : null); cell(tr, seconds(r.duration_ms / 1000), "num"); cell(tr, r.reason, "reason");
          });
          $("closes-shown").textContent = "(newest " + state.closes.length + ")";
        }

        async function follow() {
          // The live feed: one NDJSON record per close; on any failure, polling takes over until it
          // reconnects, and the failed stream's connection is given back.
          const abort = new AbortController();
          try {
            const response = await fetch("/closes/stream", {headers, cache: "no-store", signal: abort.signal});
            if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
            state.streaming = true;
            $("feed").textContent = "live";
            addCloses((await api("/closes?limit=100")).closes);
            const reader = response.body.getReader();
            const decoder = new TextDecoder();
            let buffered = "";
            for (;;) {
              const {value, done} = await reader.read();
              if (done) break;
              buffered += decoder.decode(value, {stream: true});
              let newline;
              while ((newline = buffered.indexOf("\n")) >= 0) {
                const line = buffered.slice(0, newline);
                buffered = buffered.slice(newline + 1);
                if (!line.startsWith("{")) continue;
                const record = JSON.parse(line);
                if (record.seq !== undefined) { addCloses([record]); scheduleRefresh(200); }
              }
            }
          } catch (error) {
            console.warn("close stream:", error);
          } finally {
            abort.abort();
          }
          state.streaming = false;
          $("feed").textContent = "polling";
          setTimeout(follow, 5000);
        }

        let refreshTimer = null, refreshing = false, stale = false;
        function scheduleRefresh(delay) {
          if (refreshing && delay < 2000) { stale = true; return; }  // the refresh under way ends with another
          clearTimeout(refreshTimer);
          refreshTimer = setTimeout(refresh, delay);
        }
        async function refresh() {
          refreshing = true;
          stale = false;
          try {
            const [status, history, connections, targets] = await Promise.all([api("/status"), api("/history"), api("/connections"), api("/targets")]);
            if (!state.streaming) addCloses((await api("/closes?limit=100")).closes);
            state.connections = connections;
            renderStatus(status, history);
            renderConnections(connections);
            renderRTT(connections.connections);
            renderTargets(targets);
            $("updated").textContent = new Date().toLocaleTimeString();
            $("error").hidden = true;
            document.body.dataset.updates = Number(document.body.dataset.updates) + 1;
          } catch (error) {
            $("error").textContent = "cannot reach the status API: " + error.message;
            $("error").hidden = false;
          } finally {
            refreshing = false;
            scheduleRefresh(stale ? 0 : 2000);
          }
        }

        $("filter").addEventListener("input", event => { state.filter = event.target.value; if (state.connections.connections) renderConnections(state.connections); });
        for (const th of document.querySelectorAll("#connections th[data-sort]")) {
          th.addEventListener("click", () => {
            state.sort = {key: th.dataset.sort, dir: state.sort.key === th.dataset.sort ? -state.sort.dir : 1};
            if (state.connections.connections) renderConnections(state.connections);
          });
        }
        refresh();
        follow();
        </script>
        </body>
        </html>
        """#
}

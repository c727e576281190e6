/**
 * The dashboard the admin API serves at /dashboard: one static page, plain HTML and JS, no build.
 * It reads /resources, /problems, /endpoints and /stats every 2 seconds and shows Gateways and
 * listeners with their conditions, routes with attached policies and live request rate, error
 * rate and p50/p99 (from the difference of two reads of the cumulative histograms), backends
 * with endpoint health, and recent configuration problems.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Portico</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .kpi b { font-size: 18px; }
  main { padding: 12px 20px; display: grid; gap: 16px; }
  section { background: #fff; border-radius: 6px; padding: 10px 14px; box-shadow: 0 1px 2px #0002; }
  h2 { font-size: 15px; margin: 4px 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eceef2; vertical-align: top; }
  th { font-weight: 600; color: #556; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .ok { color: #137333; } .bad { color: #c5221f; font-weight: 600; } .muted { color: #889; }
  .pill { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; margin: 1px 2px; background: #e8f0fe; }
  .pill.bad { background: #fce8e6; } .pill.ok { background: #e6f4ea; }
  #updated { color: #aab; font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>Portico</h1>
  <span class="kpi">requests/s <b id="rps-total">0</b></span>
  <span class="kpi">errors/s <b id="eps-total">0</b></span>
  <span class="kpi">requests <b id="count-total">0</b></span>
  <span class="kpi">problems <b id="problem-count">0</b></span>
  <span id="updated"></span>
</header>
<main>
  <section><h2>Gateways and listeners</h2><table id="gateways"><thead><tr><th>Gateway</th><th>Listener</th><th>Port</th><th>Routes</th><th>Conditions</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Routes</h2><table id="routes"><thead><tr><th>Route</th><th>Kind</th><th>Accepted</th><th>Policies</th><th class="num">req/s</th><th class="num">errors %</th><th class="num">p50 ms</th><th class="num">p99 ms</th><th class="num">total</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Backends</h2><table id="backends"><thead><tr><th>Pool</th><th>Endpoint</th><th>Health</th><th>Active check</th><th class="num">in flight</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Configuration problems</h2><ul id="problems"></ul></section>
</main>
<script>
const ROUTE_KINDS = ['HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute', 'UDPRoute']
const NEGATIVE = new Set(['Conflicted', 'Overlapped'])
let prev = null
const esc = (s) => String(s ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])
const bad = (c) => (NEGATIVE.has(c.type) ? c.status === 'True' : c.status === 'False')
const pills = (conds) => (conds || []).map((c) => '<span class="pill ' + (bad(c) ? 'bad' : 'ok') + '" title="' + esc(c.reason + ': ' + (c.message || '')) + '">' + esc(c.type) + '=' + esc(c.status) + '</span>').join('')
const nameOf = (o) => (o.metadata.namespace ? o.metadata.namespace + '/' : '') + o.metadata.name
async function get(path) {
  const res = await fetch(path, { cache: 'no-store' })
  if (!res.ok) throw new Error(path + ': ' + res.status)
  return res.json()
}
function quantile(buckets, bounds, q) {
  const total = buckets.reduce((a, b) => a + b, 0)
  if (total === 0) return null
  let rank = q * total, cum = 0
  for (let i = 0; i < buckets.length; i++) {
    const lo = i === 0 ? 0 : bounds[i - 1], hi = i < bounds.length ? bounds[i] : bounds[bounds.length - 1]
    if (cum + buckets[i] >= rank) return (lo + (hi - lo) * ((rank - cum) / (buckets[i] || 1))) * 1000
    cum += buckets[i]
  }
  return bounds[bounds.length - 1] * 1000
}
const fmt = (v, d = 1) => (v === null || v === undefined || !isFinite(v) ? '–' : v.toFixed(d))
async function refresh() {
  const [objects, problems, endpoints, stats] = await Promise.all([get('/resources'), get('/problems'), get('/endpoints').catch(() => []), get('/stats')])
  const now = performance.now()
  // Gateways
  const gw = []
  for (const g of objects.filter((o) => o.kind === 'Gateway')) {
    const ls = new Map(((g.status && g.status.listeners) || []).map((l) => [l.name, l]))
    gw.push('<tr><td><b>' + esc(nameOf(g)) + '</b></td><td colspan="3"></td><td>' + pills(g.status && g.status.conditions) + '</td></tr>')
    for (const l of (g.spec && g.spec.listeners) || []) {
      const st = ls.get(l.name) || {}
      gw.push('<tr><td></td><td>' + esc(l.name) + ' <span class="muted">' + esc(l.protocol) + (l.hostname ? ' ' + esc(l.hostname) : '') + '</span></td><td>' + esc(l.port) + '</td><td>' + esc(st.attachedRoutes ?? 0) + '</td><td>' + pills(st.conditions) + '</td></tr>')
    }
  }
  document.querySelector('#gateways tbody').innerHTML = gw.join('') || '<tr><td class="muted" colspan="5">no Gateways</td></tr>'
  // Routes with live numbers
  const byRoute = new Map(stats.routes.map((r) => [r.route, r]))
  const prevBy = prev ? new Map(prev.stats.routes.map((r) => [r.route, r])) : new Map()
  const dt = prev ? (now - prev.at) / 1000 : 0
  const policies = objects.filter((o) => o.kind.endsWith('Policy'))
  let rpsTotal = 0, epsTotal = 0, countTotal = 0
  const rows = []
  const routeNames = new Set()
  const routeRow = (name, kind, accepted, attached) => {
    routeNames.add(name)
    const cur = byRoute.get(name) || { requests: 0, errors: 0, buckets: [] }
    const old = prevBy.get(name) || { requests: 0, errors: 0, buckets: cur.buckets.map(() => 0) }
    const dn = cur.requests - old.requests, de = cur.errors - old.errors
    const rps = dt > 0 ? dn / dt : 0
    const delta = cur.buckets.map((b, i) => b - (old.buckets[i] || 0))
    rpsTotal += rps; epsTotal += dt > 0 ? de / dt : 0; countTotal += cur.requests
    rows.push('<tr data-route="' + esc(name) + '"><td>' + esc(name) + '</td><td>' + esc(kind) + '</td><td>' + accepted + '</td><td>' + attached + '</td><td class="num rps">' + fmt(rps) + '</td><td class="num err">' + (dn > 0 ? fmt((100 * de) / dn) : '–') + '</td><td class="num p50">' + fmt(quantile(delta, stats.buckets, 0.5), 2) + '</td><td class="num p99">' + fmt(quantile(delta, stats.buckets, 0.99), 2) + '</td><td class="num count">' + cur.requests + '</td></tr>')
  }
  for (const r of objects.filter((o) => ROUTE_KINDS.includes(o.kind))) {
    const conds = ((r.status && r.status.parents) || []).flatMap((p) => p.conditions || [])
    const attached = policies.filter((p) => [...((p.spec && p.spec.targetRefs) || []), ...(p.spec && p.spec.targetRef ? [p.spec.targetRef] : [])].some((t) => t.kind === r.kind && t.name === r.metadata.name) && p.metadata.namespace === r.metadata.namespace)
    routeRow(nameOf(r), r.kind, pills(conds.filter((c) => c.type === 'Accepted' || bad(c))), attached.map((p) => '<span class="pill">' + esc(p.kind + ' ' + p.metadata.name) + '</span>').join(''))
  }
  for (const r of stats.routes) if (!routeNames.has(r.route)) routeRow(r.route, '', '', '')
  document.querySelector('#routes tbody').innerHTML = rows.join('')
  document.getElementById('rps-total').textContent = fmt(rpsTotal)
  document.getElementById('eps-total').textContent = fmt(epsTotal)
  document.getElementById('count-total').textContent = String(countTotal)
  // Backends
  const be = []
  for (const p of endpoints) for (const e of p.endpoints) be.push('<tr><td>' + esc(p.pool) + '</td><td>' + esc(e.endpoint) + '</td><td class="' + (e.healthy ? 'ok' : 'bad') + '">' + (e.healthy ? 'healthy' : 'unhealthy' + (e.ejectedWorkers ? ' (ejected)' : '')) + '</td><td>' + (e.active ? esc(e.active.lastResult) : '<span class="muted">none</span>') + '</td><td class="num">' + e.inFlight + '</td></tr>')
  document.querySelector('#backends tbody').innerHTML = be.join('') || '<tr><td class="muted" colspan="5">no backends</td></tr>'
  // Problems: load errors, rejected snapshots, and conditions that say something is wrong
  const items = []
  for (const p of problems.load) items.push('<li class="bad">' + esc(p.origin) + (p.line ? ':' + p.line : '') + ': ' + esc(p.message) + '</li>')
  for (const r of problems.rejected) items.push('<li class="bad">rejected: ' + esc(r) + '</li>')
  for (const o of objects) {
    const st = o.status || {}
    const all = [...(st.conditions || []), ...((st.listeners || []).flatMap((l) => l.conditions || [])), ...((st.parents || []).flatMap((p) => p.conditions || []))]
    for (const c of all.filter(bad)) items.push('<li class="bad">' + esc(o.kind + ' ' + nameOf(o)) + ': ' + esc(c.type + '=' + c.status + ' (' + c.reason + ') ' + (c.message || '')) + '</li>')
  }
  document.getElementById('problems').innerHTML = items.join('') || '<li class="ok">none</li>'
  document.getElementById('problem-count').textContent = String(items.length)
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString()
  prev = { at: now, stats }
}
async function loop() {
  try { await refresh() } catch (err) { document.getElementById('updated').textContent = 'admin API unreachable: ' + err.message }
  setTimeout(loop, Number(new URLSearchParams(location.search).get('interval') || 2000))
}
loop()
</script>
</body>
</html>
`

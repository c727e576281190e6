/**
 * The CLI's subcommands (src/main.ts dispatches on the first argument):
 *
 *   portico status                         Gateways, listeners, attached routes, problems (admin API)
 *   portico routes                         routes as a table (admin API)
 *   portico describe <kind> <ns>/<name>    one object: spec, status, policies that target it (admin API)
 *   portico validate DIR                   translate manifests offline, print every condition; exit 1 on problems
 *
 * The admin views are read from --admin URL (env PORTICO_ADMIN; default http://127.0.0.1:9901),
 * with --admin-token-file PATH (env ADMIN_TOKEN_FILE) when the admin API wants a token.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { stringify } from 'yaml'
import type { K8sObject } from './store/kinds.ts'
import { parseManifests } from './sources/manifests.ts'
import { viewOf } from './store/store.ts'
import { translate } from './translate/index.ts'
import { validateSnapshot } from './ir/validate.ts'

export const COMMANDS = ['status', 'routes', 'describe', 'validate'] as const

const COMMAND_USAGE = `usage:
  portico status   [--admin URL] [--admin-token-file PATH]    Gateways, listeners, attached routes and problems
  portico routes   [--admin URL] [--admin-token-file PATH]    routes as a table
  portico describe KIND NS/NAME [--admin URL]                 an object, its status and the policies targeting it
  portico validate DIR [--controller-name NAME]                translate manifests offline; exit 1 on any problem`

interface Out {
  out(line: string): void
  err(line: string): void
}

const stdio: Out = { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') }

type Obj = K8sObject & { status?: any; spec?: any }

const ROUTE_KINDS = ['HTTPRoute', 'GRPCRoute', 'TLSRoute', 'TCPRoute', 'UDPRoute']
/** Condition types where True is the bad news. */
const NEGATIVE = new Set(['Conflicted', 'Overlapped'])

export async function runCommand(argv: readonly string[], env: Record<string, string | undefined> = process.env, io: Out = stdio): Promise<number> {
  const [command, ...rest] = argv
  const flags = new Map<string, string>()
  const args: string[] = []
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!
    if (a === '-h' || a === '--help') {
      io.out(COMMAND_USAGE)
      return 0
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      if (eq > 0) flags.set(a.slice(0, eq), a.slice(eq + 1))
      else flags.set(a, rest[++i] ?? '')
    } else args.push(a)
  }
  try {
    switch (command) {
      case 'validate':
        if (args.length !== 1) return usage(io)
        return validateDir(args[0]!, flags.get('--controller-name') ?? env.GATEWAY_CONTROLLER_NAME ?? 'portico.dev/gateway-controller', io)
      case 'status':
        return await status(adminClient(flags, env), io)
      case 'routes':
        return await routes(adminClient(flags, env), io)
      case 'describe':
        if (args.length !== 2) return usage(io)
        return await describe(adminClient(flags, env), args[0]!, args[1]!, io)
      default:
        return usage(io)
    }
  } catch (err) {
    io.err(`portico ${command}: ${(err as Error).message}`)
    return 2
  }
}

function usage(io: Out): number {
  io.err(COMMAND_USAGE)
  return 2
}

// ---------------------------------------------------------------- admin API reads

interface AdminClient {
  get(path: string): Promise<unknown>
}

function adminClient(flags: Map<string, string>, env: Record<string, string | undefined>): AdminClient {
  const base = (flags.get('--admin') ?? env.PORTICO_ADMIN ?? 'http://127.0.0.1:9901').replace(/\/+$/, '')
  const tokenFile = flags.get('--admin-token-file') ?? env.ADMIN_TOKEN_FILE
  const token = tokenFile ? readFileSync(tokenFile, 'utf8').trim() : undefined
  return {
    async get(path) {
      const res = await fetch(`${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} }).catch((err: Error) => {
        throw new Error(`cannot reach the admin API at ${base} (${err.message}); is portico running? (--admin URL)`)
      })
      if (!res.ok) throw new Error(`${base}${path} answered ${res.status}${res.status === 401 ? ' (pass --admin-token-file)' : ''}`)
      return res.json()
    },
  }
}

const nameOf = (o: Obj) => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name)

function conditionText(c: any): string {
  return `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}${c.message ? `: ${c.message}` : ''}`
}

function isBad(c: any): boolean {
  return NEGATIVE.has(c.type) ? c.status === 'True' : c.status === 'False'
}

async function status(admin: AdminClient, io: Out): Promise<number> {
  const objects = (await admin.get('/resources')) as Obj[]
  const problems = (await admin.get('/problems')) as { load: { origin: string; line?: number; message: string }[]; rejected: string[] }
  const gateways = objects.filter((o) => o.kind === 'Gateway')
  let bad = 0
  for (const gw of gateways) {
    const conds = (gw.status?.conditions ?? []) as any[]
    bad += conds.filter(isBad).length
    io.out(`Gateway ${nameOf(gw)}  class=${gw.spec?.gatewayClassName ?? '?'}  ${conds.map((c) => `${c.type}=${c.status}`).join(' ')}`)
    const listenerStatus = new Map<string, any>(((gw.status?.listeners ?? []) as any[]).map((l) => [l.name, l]))
    for (const l of (gw.spec?.listeners ?? []) as any[]) {
      const st = listenerStatus.get(l.name)
      const lc = (st?.conditions ?? []) as any[]
      bad += lc.filter(isBad).length
      io.out(`  listener ${l.name}  ${l.protocol} :${l.port}${l.hostname ? `  host=${l.hostname}` : ''}  routes=${st?.attachedRoutes ?? 0}  ${lc.map((c) => `${c.type}=${c.status}`).join(' ')}`)
      for (const c of lc.filter(isBad)) io.out(`    ! ${conditionText(c)}`)
    }
    for (const c of conds.filter(isBad)) io.out(`  ! ${conditionText(c)}`)
  }
  if (gateways.length === 0) io.out('no Gateways')
  const routeObjs = objects.filter((o) => ROUTE_KINDS.includes(o.kind))
  const badRoutes = routeObjs.filter((r) => ((r.status?.parents ?? []) as any[]).some((p) => ((p.conditions ?? []) as any[]).some(isBad)))
  io.out(`routes: ${routeObjs.length} (${badRoutes.length} with problems)`)
  for (const r of badRoutes)
    for (const p of r.status.parents as any[]) for (const c of ((p.conditions ?? []) as any[]).filter(isBad)) io.out(`  ! ${r.kind} ${nameOf(r)} → ${p.parentRef?.name ?? '?'}: ${conditionText(c)}`)
  bad += badRoutes.length
  for (const p of problems.load) io.out(`! load ${p.origin}${p.line ? `:${p.line}` : ''}: ${p.message}`)
  for (const r of problems.rejected) io.out(`! rejected: ${r}`)
  bad += problems.load.length + problems.rejected.length
  io.out(bad === 0 ? 'no problems' : `${bad} problem(s)`)
  return bad === 0 ? 0 : 1
}

async function routes(admin: AdminClient, io: Out): Promise<number> {
  const objects = (await admin.get('/resources')) as Obj[]
  const rows: string[][] = [['KIND', 'ROUTE', 'HOSTNAMES', 'PARENTS', 'BACKENDS', 'ACCEPTED', 'REFS']]
  for (const r of objects.filter((o) => ROUTE_KINDS.includes(o.kind))) {
    const parents = (r.status?.parents ?? []) as any[]
    const cond = (type: string) => {
      const vals = parents.map((p) => ((p.conditions ?? []) as any[]).find((c) => c.type === type)?.status ?? '-')
      return vals.length ? [...new Set(vals)].join(',') : '-'
    }
    const backends = new Set<string>()
    for (const rule of (r.spec?.rules ?? []) as any[]) for (const b of (rule.backendRefs ?? []) as any[]) backends.add(`${b.name}${b.port ? `:${b.port}` : ''}`)
    rows.push([
      r.kind,
      nameOf(r),
      ((r.spec?.hostnames ?? []) as string[]).join(',') || '*',
      ((r.spec?.parentRefs ?? []) as any[]).map((p) => `${p.name}${p.sectionName ? `/${p.sectionName}` : ''}`).join(',') || '-',
      [...backends].join(',') || '-',
      cond('Accepted'),
      cond('ResolvedRefs'),
    ])
  }
  printTable(rows, io)
  return 0
}

async function describe(admin: AdminClient, kindArg: string, ref: string, io: Out): Promise<number> {
  const objects = (await admin.get('/resources')) as Obj[]
  const [ns, name] = ref.includes('/') ? ref.split('/', 2) : ['default', ref]
  const kind = kindArg.toLowerCase()
  const obj = objects.find((o) => (o.kind.toLowerCase() === kind || `${o.kind.toLowerCase()}s` === kind) && o.metadata.name === name && (o.metadata.namespace ?? ns) === ns)
  if (!obj) {
    io.err(`${kindArg} ${ref} not found`)
    return 1
  }
  io.out(stringify({ kind: obj.kind, metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace }, spec: obj.spec, status: obj.status }).trimEnd())
  const policies = objects.filter((o) => o.kind.endsWith('Policy') && targets(o, obj))
  io.out(policies.length ? 'effective policies:' : 'effective policies: none')
  for (const p of policies) io.out(`  ${p.kind} ${nameOf(p)}: ${Object.keys(p.spec ?? {}).filter((k) => k !== 'targetRefs' && k !== 'targetRef').join(', ')}`)
  return 0
}

function targets(policy: Obj, obj: Obj): boolean {
  const refs = [...((policy.spec?.targetRefs ?? []) as any[]), ...(policy.spec?.targetRef ? [policy.spec.targetRef] : [])]
  const sameNs = (policy.metadata.namespace ?? 'default') === (obj.metadata.namespace ?? 'default')
  return sameNs && refs.some((r) => r.kind === obj.kind && r.name === obj.metadata.name)
}

function printTable(rows: string[][], io: Out): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  for (const r of rows) io.out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
}

// ---------------------------------------------------------------- validate (offline)

function manifestFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const entry of readdirSync(d).sort()) {
      if (entry.startsWith('.')) continue
      const p = join(d, entry)
      const st = statSync(p)
      if (st.isDirectory()) walk(p)
      else if (/\.(ya?ml|json)$/.test(entry)) out.push(p)
    }
  }
  walk(dir)
  return out
}

/** Translate a folder as Portico would, print every condition; 1 when anything is wrong. */
export function validateDir(dir: string, controllerName: string, io: Out = stdio): number {
  let st
  try {
    st = statSync(dir)
  } catch {
    io.err(`portico validate: ${dir}: no such directory`)
    return 2
  }
  if (!st.isDirectory()) {
    io.err(`portico validate: ${dir} is not a directory`)
    return 2
  }
  let problems = 0
  const objects: K8sObject[] = []
  for (const file of manifestFiles(dir)) {
    const parsed = parseManifests(readFileSync(file, 'utf8'), relative(dir, file) || file)
    objects.push(...parsed.objects)
    for (const p of parsed.problems) {
      problems++
      io.out(`ERROR ${p.origin}${p.line ? `:${p.line}` : ''}: ${p.message}`)
    }
  }
  const result = translate(viewOf(objects, 1), { controllerName })
  const keys = Object.keys(result.status).sort()
  for (const key of keys) {
    const st = result.status[key] as any
    const lines: [string, any][] = []
    for (const c of (st.conditions ?? []) as any[]) lines.push(['', c])
    for (const l of (st.listeners ?? []) as any[]) for (const c of (l.conditions ?? []) as any[]) lines.push([` listener ${l.name}`, c])
    for (const p of (st.parents ?? []) as any[]) for (const c of (p.conditions ?? []) as any[]) lines.push([` parent ${p.parentRef?.namespace ? `${p.parentRef.namespace}/` : ''}${p.parentRef?.name ?? '?'}${p.parentRef?.sectionName ? `/${p.parentRef.sectionName}` : ''}`, c])
    for (const a of (st.ancestors ?? []) as any[]) for (const c of (a.conditions ?? []) as any[]) lines.push([` ancestor ${a.ancestorRef?.name ?? '?'}`, c])
    for (const [where, c] of lines) {
      const bad = isBad(c)
      if (bad) problems++
      io.out(`${bad ? 'ERROR' : 'ok   '} ${key}${where}: ${conditionText(c)}`)
    }
  }
  // A route no Gateway of ours took has no status at all: say so (a typo in a parentRef, say).
  for (const o of objects) {
    if (!ROUTE_KINDS.includes(o.kind)) continue
    const key = `${o.kind}/${o.metadata.namespace ?? 'default'}/${o.metadata.name}`
    if (result.status[key]) continue
    problems++
    io.out(`ERROR ${key}: attached to no Gateway of ${controllerName} (parentRefs: ${(((o as Obj).spec?.parentRefs ?? []) as any[]).map((p) => p.name).join(', ') || 'none'})`)
  }
  for (const p of validateSnapshot(result.ir)) {
    problems++
    io.out(`ERROR snapshot: ${p}`)
  }
  io.out(`${objects.length} object(s), ${keys.length} with status, ${problems} problem(s)`)
  return problems === 0 ? 0 : 1
}

/** Label and field selectors as the API server parses them (set-based labels, equality fields). */

type Requirement = (labels: Record<string, string>) => boolean

/** Parses `a=b,c!=d,e,!f,g in (x,y),h notin (z)`. Throws on syntax the server would reject. */
export function parseLabelSelector(text: string | null): Requirement {
  if (!text) return () => true
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const ch of text) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      parts.push(current)
      current = ''
    } else current += ch
  }
  parts.push(current)
  const reqs = parts.map((raw): Requirement => {
    const p = raw.trim()
    let m: RegExpMatchArray | null
    if ((m = p.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, key, op, list] = m as unknown as [string, string, string, string]
      const values = new Set(list.split(',').map((v) => v.trim()))
      return op === 'in' ? (l) => key in l && values.has(l[key]!) : (l) => !(key in l) || !values.has(l[key]!)
    }
    if ((m = p.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/))) {
      const [, key, op, value] = m as unknown as [string, string, string, string]
      return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value
    }
    if ((m = p.match(/^!([\w./-]+)$/))) {
      const key = m[1]!
      return (l) => !(key in l)
    }
    if ((m = p.match(/^([\w./-]+)$/))) {
      const key = m[1]!
      return (l) => key in l
    }
    throw new Error(`unable to parse requirement: ${JSON.stringify(p)}`)
  })
  return (labels) => reqs.every((r) => r(labels))
}

/** Field selectors: only metadata.name and metadata.namespace, as for most resources. */
export function parseFieldSelector(text: string | null): (o: any) => boolean {
  if (!text) return () => true
  const reqs = text.split(',').map((raw) => {
    const m = raw.trim().match(/^(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(.*)$/)
    if (!m) throw new Error(`field label not supported: ${raw.trim().split(/[=!]/)[0]}`)
    const [, field, op, value] = m as unknown as [string, string, string, string]
    const get = (o: any) => (field === 'metadata.name' ? o.metadata?.name : o.metadata?.namespace ?? '')
    return op === '!=' ? (o: any) => get(o) !== value : (o: any) => get(o) === value
  })
  return (o) => reqs.every((r) => r(o))
}

/**
 * A minimal Prometheus registry: counters and gauges with labels, rendered as text
 * exposition. Hot-path increments are a Map lookup on a precomputed label key.
 */

type Labels = Record<string, string>

class Series {
  readonly values = new Map<string, number>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}
}

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

export function labelKey(labels: Labels | undefined): string {
  if (!labels) return ''
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escape(labels[k]!)}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

export class MetricsRegistry {
  #series = new Map<string, Series>()

  #get(name: string, help: string, type: 'counter' | 'gauge'): Series {
    let s = this.#series.get(name)
    if (!s) this.#series.set(name, (s = new Series(name, help, type)))
    return s
  }

  counter(name: string, help: string) {
    const s = this.#get(name, help, 'counter')
    return {
      inc: (labels?: Labels, by = 1) => {
        const k = labelKey(labels)
        s.values.set(k, (s.values.get(k) ?? 0) + by)
      },
    }
  }

  gauge(name: string, help: string) {
    const s = this.#get(name, help, 'gauge')
    return { set: (value: number, labels?: Labels) => void s.values.set(labelKey(labels), value) }
  }

  /** A value computed at scrape time (a gauge, or a counter kept elsewhere). */
  collect(name: string, help: string, read: () => Iterable<[Labels | undefined, number]>, type: 'counter' | 'gauge' = 'gauge'): void {
    const s = this.#get(name, help, type)
    this.#collectors.set(name, () => {
      s.values.clear()
      for (const [labels, v] of read()) s.values.set(labelKey(labels), v)
    })
  }
  #collectors = new Map<string, () => void>()

  render(): string {
    for (const c of this.#collectors.values()) c()
    let out = ''
    for (const s of this.#series.values()) {
      out += `# HELP ${s.name} ${s.help}\n# TYPE ${s.name} ${s.type}\n`
      for (const [k, v] of s.values) out += `${s.name}${k} ${v}\n`
    }
    return out
  }
}

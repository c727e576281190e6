/** Parses an .htpasswd file: bcrypt ($2a$, $2b$, $2y$) and {SHA} entries; anything else is refused. */
export function parseHtpasswd(text: string): { user: string; hash: string }[] | string {
  const out: { user: string; hash: string }[] = []
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    if (colon <= 0) return `.htpasswd line ${i + 1} is not "user:hash"`
    const user = line.slice(0, colon)
    const hash = line.slice(colon + 1)
    if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash) && !/^\{SHA\}[A-Za-z0-9+/]{27}=$/.test(hash))
      return `.htpasswd line ${i + 1} (user ${user}) uses an unsupported hash: only bcrypt ($2y$, htpasswd -B) and {SHA} (htpasswd -s) are supported`
    out.push({ user, hash })
  }
  if (out.length === 0) return '.htpasswd has no users'
  return out
}

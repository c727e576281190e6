/**
 * nginx `grpc_pass` in front of Portico (a common layout: an edge nginx, then the gateway).
 * nginx's HPACK decoder rejected response heads that Bun's encoder wrote with dynamic-table
 * references under concurrent streams ("upstream sent invalid http2 table index"); the h2
 * server writes literal fields (grpc-status.ts `literal`), so every call must succeed.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { eventually, freePort } from '../e2e/support.ts'
import { echoClient, grpc, unary } from './echo.ts'
import { GrpcHarness } from './harness.ts'

const h = new GrpcHarness()
let nginx: Subprocess | undefined
let nginxPort = 0
let dir = ''
let client: grpc.Client

beforeAll(async () => {
  // Portico's route is live before nginx goes in front of it
  const direct = await h.startCatchAll('all')
  direct.close()
  const bin = Bun.which('nginx') ?? Bun.which('nginx', { PATH: '/usr/sbin:/sbin' })
  if (!bin) throw new Error('nginx is needed for this test (apt-get install nginx; .ci/run installs it)')
  nginxPort = await freePort()
  dir = mkdtempSync(join(tmpdir(), 'portico-grpc-nginx-'))
  for (const sub of ['tmp', 'logs']) mkdirSync(join(dir, sub))
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fcgi; uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;
  upstream portico { server 127.0.0.1:${h.port}; keepalive 4; }
  server { listen 127.0.0.1:${nginxPort} http2; location / { grpc_pass grpc://portico; } }
}
`,
  )
  nginx = Bun.spawn([bin, '-p', dir, '-c', join(dir, 'nginx.conf')], { stdout: 'ignore', stderr: 'inherit' })
  client = echoClient(nginxPort)
  await eventually(async () => (await unary(client, 'Echo', {}, 'hi', 1000)).code === 0 || undefined, 10_000, 'nginx → portico live')
})

afterAll(async () => {
  client?.close()
  nginx?.kill('SIGTERM')
  await nginx?.exited
  await h.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

test('400 calls, 16 at a time, through nginx then Portico: every one OK with its trailers', async () => {
  const codes = new Map<number, number>()
  let trailers = 0
  for (let batch = 0; batch < 25; batch++) {
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => unary(client, 'Echo', { 'x-call': `${batch}-${i}` })))
    for (const r of results) {
      codes.set(r.code, (codes.get(r.code) ?? 0) + 1)
      if (r.trailers['x-echo-trailer'] === 'grpc-infra-backend-v1') trailers++
    }
  }
  expect(Object.fromEntries(codes)).toEqual({ 0: 400 })
  expect(trailers).toBe(400)
})

test('a gateway-made status (UNIMPLEMENTED for no route) also crosses nginx', async () => {
  const other = echoClient(nginxPort)
  try {
    const r = await unary(other, 'Nope', {}, 'hi', 5000, 'other.Service')
    expect(r.code).toBe(grpc.status.UNIMPLEMENTED)
  } finally {
    other.close()
  }
})

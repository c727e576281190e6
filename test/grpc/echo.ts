/**
 * The gRPC echo backend and client the GRPCRoute tests share (@grpc/grpc-js on both sides, no
 * .proto: messages are raw bytes). Like the upstream conformance echo server, a unary call is
 * answered with what the backend saw: its own name, the method path, the :authority and every
 * metadata entry (JSON). Streaming methods echo each message (bidi), count them (client stream)
 * or send N of them (server stream); all of them respect backpressure through grpc-js streams.
 */
import * as grpc from '@grpc/grpc-js'

export const SERVICE = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho'
export const TEST_SERVICE = 'portico.test.Stream'

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b }

function method(path: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return { path, requestStream, responseStream, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize }
}

export interface EchoAnswer {
  backend: string
  method: string
  authority: string
  /** Metadata as the backend received it, repeated values joined with ",". */
  headers: Record<string, string>
}

export interface EchoBackend {
  readonly name: string
  readonly port: number
  /** Download messages written so far (accepted by grpc-js), Upload/Bidi messages received, unary calls answered. */
  readonly stats: { sent: number; received: number; unary: number }
  stop(): Promise<void>
}

/** A gRPC echo backend on 127.0.0.1 (h2c, or TLS when `tls` is given). */
export async function startEchoBackend(name: string, tls?: { key: string; cert: string }): Promise<EchoBackend> {
  const server = new grpc.Server()
  const stats = { sent: 0, received: 0, unary: 0 }
  const unary = (path: string) => (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    stats.unary++
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(call.metadata.toJSON())) headers[k] = (v as (string | Buffer)[]).map(String).join(',')
    const answer: EchoAnswer = { backend: name, method: path, authority: headers[':authority'] ?? '', headers }
    if (call.request.toString() === 'fail') return callback({ code: grpc.status.NOT_FOUND, details: 'asked to fail' })
    const trailer = new grpc.Metadata()
    trailer.set('x-echo-trailer', name)
    callback(null, Buffer.from(JSON.stringify(answer)), trailer)
  }
  const definition: grpc.ServiceDefinition = {
    Echo: method(`/${SERVICE}/Echo`, false, false),
    EchoTwo: method(`/${SERVICE}/EchoTwo`, false, false),
    EchoThree: method(`/${SERVICE}/EchoThree`, false, false),
  }
  server.addService(definition, {
    Echo: unary(`/${SERVICE}/Echo`),
    EchoTwo: unary(`/${SERVICE}/EchoTwo`),
    EchoThree: unary(`/${SERVICE}/EchoThree`),
  })
  server.addService(
    {
      Bidi: method(`/${TEST_SERVICE}/Bidi`, true, true),
      Upload: method(`/${TEST_SERVICE}/Upload`, true, false),
      Download: method(`/${TEST_SERVICE}/Download`, false, true),
      Slow: method(`/${TEST_SERVICE}/Slow`, false, false),
    },
    {
      // Echo every message back, pausing the input while the output is full.
      Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (m: Buffer) => {
          stats.received++
          if (!call.write(m)) {
            call.pause()
            call.once('drain', () => call.resume())
          }
        })
        call.on('end', () => call.end())
      },
      Upload: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        let count = 0
        let bytes = 0
        call.on('data', (m: Buffer) => {
          stats.received++
          count++
          bytes += m.length
        })
        call.on('end', () => callback(null, Buffer.from(JSON.stringify({ count, bytes }))))
      },
      Download: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const { count, size } = JSON.parse(call.request.toString()) as { count: number; size: number }
        let sent = 0
        const payload = Buffer.alloc(size, 120)
        const pump = () => {
          while (sent < count) {
            sent++
            stats.sent++
            if (!call.write(payload)) return void call.once('drain', pump)
          }
          call.end()
        }
        pump()
      },
      // Answers after the requested delay (ms), for deadlines.
      Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const timer = setTimeout(() => callback(null, Buffer.from('late')), Number(call.request.toString()))
        call.on('cancelled', () => clearTimeout(timer))
      },
    },
  )
  const credentials = tls ? grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }], false) : grpc.ServerCredentials.createInsecure()
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))))
  return {
    name,
    port,
    stats,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  }
}

export interface CallResult {
  code: number
  details: string
  answer: EchoAnswer | undefined
  /** The response head's metadata and the trailers. */
  headers: Record<string, string>
  trailers: Record<string, string>
}

function flat(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(md.toJSON())) out[k] = (v as (string | Buffer)[]).map(String).join(',')
  return out
}

/** A client to host:port that sends `authority` as :authority. */
export function echoClient(port: number, authority?: string, credentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, credentials, { ...(authority ? { 'grpc.default_authority': authority } : {}), ...options })
}

/** One unary call; gRPC errors are results, not exceptions. */
export function unary(client: grpc.Client, methodName: string, metadata: Record<string, string> = {}, body = 'hi', deadlineMs = 5000, service = SERVICE): Promise<CallResult> {
  const md = new grpc.Metadata()
  for (const [k, v] of Object.entries(metadata)) md.set(k, v)
  return new Promise((resolve) => {
    let headers: Record<string, string> = {}
    let response: Buffer | undefined
    const call = client.makeUnaryRequest(`/${service}/${methodName}`, raw.serialize, raw.deserialize, Buffer.from(body), md, { deadline: Date.now() + deadlineMs }, (_err, res) => {
      response = res
    })
    call.on('metadata', (m) => (headers = flat(m)))
    // 'status' comes after the callback, with the trailers either way.
    call.on('status', (s) => {
      const answer = s.code === 0 && response && service === SERVICE ? (JSON.parse(response.toString()) as EchoAnswer) : undefined
      resolve({ code: s.code, details: s.details, answer, headers, trailers: flat(s.metadata) })
    })
  })
}

export const rawCodec = raw
export { grpc }

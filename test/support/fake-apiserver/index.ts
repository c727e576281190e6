export { FakeApiServer, startFakeApiServer, type FakeApiServerOptions, type RecordedRequest } from './server.ts'
export { DEFAULT_RESOURCES, type ResourceType } from './resources.ts'
export { generatePki, hasOpenssl, type TestPki } from './certs.ts'

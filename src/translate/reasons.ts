/**
 * Gateway API condition types and reasons (gateway.networking.k8s.io/v1, v1.6 line), kept as
 * constants so a typo is a compile error rather than a status nobody's tooling recognises.
 */

export const COND = {
  Accepted: 'Accepted',
  Programmed: 'Programmed',
  ResolvedRefs: 'ResolvedRefs',
  Conflicted: 'Conflicted',
  SupportedVersion: 'SupportedVersion',
  InsecureFrontendValidationMode: 'InsecureFrontendValidationMode',
} as const

export const REASON = {
  // shared
  Accepted: 'Accepted',
  Programmed: 'Programmed',
  ResolvedRefs: 'ResolvedRefs',
  Invalid: 'Invalid',
  Pending: 'Pending',
  UnsupportedValue: 'UnsupportedValue',
  RefNotPermitted: 'RefNotPermitted',
  InvalidKind: 'InvalidKind',
  // GatewayClass
  InvalidParameters: 'InvalidParameters',
  SupportedVersion: 'SupportedVersion',
  // Gateway
  ListenersNotValid: 'ListenersNotValid',
  UnsupportedAddress: 'UnsupportedAddress',
  AddressNotAssigned: 'AddressNotAssigned',
  AddressNotUsable: 'AddressNotUsable',
  ConfigurationChanged: 'ConfigurationChanged',
  // Listener
  UnsupportedProtocol: 'UnsupportedProtocol',
  InvalidRouteKinds: 'InvalidRouteKinds',
  InvalidCertificateRef: 'InvalidCertificateRef',
  InvalidCACertificateRef: 'InvalidCACertificateRef',
  InvalidCACertificateKind: 'InvalidCACertificateKind',
  NoValidCACertificate: 'NoValidCACertificate',
  ProtocolConflict: 'ProtocolConflict',
  HostnameConflict: 'HostnameConflict',
  NoConflicts: 'NoConflicts',
  PortUnavailable: 'PortUnavailable',
  // Route
  NotAllowedByListeners: 'NotAllowedByListeners',
  NoMatchingListenerHostname: 'NoMatchingListenerHostname',
  NoMatchingParent: 'NoMatchingParent',
  BackendNotFound: 'BackendNotFound',
  // Policy
  Conflicted: 'Conflicted',
  TargetNotFound: 'TargetNotFound',
} as const

export const GATEWAY_GROUP = 'gateway.networking.k8s.io'

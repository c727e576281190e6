/**
 * `requireHttps`: a plain-HTTP request to a route served only over HTTPS (Kong's route
 * `protocols: [https]` and its `https_redirect_status_code`) is answered, not forwarded: 426
 * "Please use HTTPS protocol", or a redirect (301, 302, 307, 308) to the same URL over https.
 */
export interface RequireHttpsSpec {
  readonly status: 426 | 301 | 302 | 307 | 308
}

declare module '../kind.ts' {
  interface PolicySpecs {
    requireHttps: RequireHttpsSpec
  }
}

/**
 * Values of the debug response headers (route policy `debugHeaders`): `x-switchyard-route`,
 * `x-switchyard-endpoint`, `x-switchyard-upstream-ms`. Route names and endpoint ids come from
 * templates and Consul and may hold characters a header value cannot (node refuses them in
 * writeHead): those are percent-encoded (UTF-8). Computed once per runtime route and endpoint.
 */
const PLAIN = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

export function headerValue(text: string): string {
  return PLAIN.test(text) ? text : encodeURIComponent(text);
}

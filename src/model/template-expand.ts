import { ConfigError } from '../errors.js';
import { compareCodeUnits } from './compare-code-units.js';
import type { RouteSpec } from './route-spec.js';
import type { DiscoverySnapshot, RouteTemplate, TemplateDestination } from './types.js';

/**
 * Template expansion.
 *
 * - A template without `each` is one route, taken literally; any `{{` in it is an error (a
 *   placeholder that can never be filled is a mistake, not a literal).
 * - A template with `each` expands once per catalog service for which every given condition holds:
 *   `each.service` is an exact name, `each.tag` must be among the service's catalog tags. `each: {}`
 *   (no condition) matches every service, by vacuous truth.
 * - The only placeholder is `{{service}}`, spelled exactly so; it is replaced in name, match.host,
 *   match.path, strip, to[].service and to[].tag. Any other `{{` left after replacement is an error.
 * - Order is deterministic: templates in input order, each expansion sorted by service name
 *   (code-unit order, independent of locale).
 *
 * The output is raw (hosts and paths as written, after replacement); `validateRoutes` normalises.
 */

const PLACEHOLDER = '{{service}}';

export function expandTemplates(
  templates: readonly RouteTemplate[],
  catalog: DiscoverySnapshot['catalog'],
): RouteSpec[] {
  const services = Object.keys(catalog).sort(compareCodeUnits);
  const out: RouteSpec[] = [];
  for (const template of templates) {
    if (template.each === undefined) {
      const field = placeholderField(template);
      if (field !== undefined) {
        throw new ConfigError(template.source, `route "${template.name}": ${field} contains "{{" but the template has no "each"`);
      }
      out.push(toSpec(template, (s) => s));
      continue;
    }
    const { tag, service } = template.each;
    if ((tag !== undefined && tag.includes('{{')) || (service !== undefined && service.includes('{{'))) {
      throw new ConfigError(template.source, `route "${template.name}": "each" must not contain placeholders`);
    }
    // Checked once, before matching: a template's validity must not depend on the catalog, or a
    // table would start failing to build the moment some service appears.
    const field = placeholderField(toSpec(template, (s) => s.replaceAll(PLACEHOLDER, '')));
    if (field !== undefined) {
      throw new ConfigError(template.source, `route "${template.name}": ${field} has an unknown placeholder (only ${PLACEHOLDER} exists)`);
    }
    for (const name of services) {
      if (service !== undefined && name !== service) continue;
      if (tag !== undefined && !(catalog[name] ?? []).includes(tag)) continue;
      out.push(toSpec(template, (s) => s.replaceAll(PLACEHOLDER, name)));
    }
  }
  return out;
}

type Fill = (s: string) => string;

function toSpec(template: RouteTemplate, fill: Fill): RouteSpec {
  return {
    name: fill(template.name),
    hosts: template.match.hosts.map(fill),
    path: fill(template.match.path),
    strip: template.strip === undefined ? undefined : fill(template.strip),
    to: template.to.map((d): TemplateDestination => {
      const filled: TemplateDestination = { service: fill(d.service), weight: d.weight };
      return d.tag === undefined ? filled : { ...filled, tag: fill(d.tag) };
    }),
    origin: 'template',
    source: template.source,
    ...(template.policy === undefined ? {} : { policy: template.policy }),
    ...(template.options === undefined ? {} : { options: template.options }),
  };
}

/** The first field holding `{{`, for the error message, or undefined. */
function placeholderField(t: RouteSpec | RouteTemplate): string | undefined {
  const hosts = 'match' in t ? t.match.hosts : t.hosts;
  const path = 'match' in t ? t.match.path : t.path;
  if (t.name.includes('{{')) return 'name';
  if (hosts.some((h) => h.includes('{{'))) return 'match.host';
  if (path.includes('{{')) return 'match.path';
  if (t.strip?.includes('{{')) return 'strip';
  for (const d of t.to) {
    if (d.service.includes('{{')) return 'to[].service';
    if (d.tag?.includes('{{')) return 'to[].tag';
  }
  return undefined;
}

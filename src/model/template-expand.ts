import { ConfigError } from '../errors.js';
import { compareCodeUnits } from './compare-code-units.js';
import { describeOptionsProblem, fillRouteOptions, isOptionsProblem, optionsConflict, optionsPlaceholderField } from './route-options.js';
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
 *   match.path, strip, to[].service and to[].tag, and in the gateway options that take it
 *   (route-options.ts: rewrite.path, rewrite.to, rewrite.host, header set values, mirror.service,
 *   mirror.tag, redirect.to), which are checked again once filled (a service name can make a
 *   rewrite host invalid: ConfigError naming the route and field). Any other `{{` left after
 *   replacement is an error.
 * - The options' cross-field rules (optionsConflict: a redirect sends nothing upstream, strip
 *   excludes rewrite.path/regex) hold for every template, also those not read from YAML.
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
    const field = placeholderField(template, (s) => s.replaceAll(PLACEHOLDER, ''));
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
  const options = template.options === undefined ? undefined : filledOptions(template, fill);
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
    ...(options === undefined ? {} : { options }),
  };
}

function filledOptions(template: RouteTemplate, fill: Fill): RouteSpec['options'] {
  const fail = (problem: { path: readonly (string | number)[]; message: string }): never => {
    throw new ConfigError(template.source, `route "${fill(template.name)}": ${describeOptionsProblem(problem)}`);
  };
  const filled = fillRouteOptions(template.options!, fill);
  if (isOptionsProblem(filled)) return fail(filled);
  const conflict = optionsConflict(filled, template.strip);
  if (conflict !== undefined) fail(conflict);
  return filled;
}

/** The first field holding `{{` (as `view` shows it: the template's strings with the known placeholder removed), or undefined. */
function placeholderField(t: RouteTemplate, view: Fill = (s) => s): string | undefined {
  const has = (s: string | undefined): boolean => s !== undefined && view(s).includes('{{');
  if (has(t.name)) return 'name';
  if (t.match.hosts.some(has)) return 'match.host';
  if (has(t.match.path)) return 'match.path';
  if (has(t.strip)) return 'strip';
  for (const d of t.to) {
    if (has(d.service)) return 'to[].service';
    if (has(d.tag)) return 'to[].tag';
  }
  return optionsPlaceholderField(t.options, view);
}

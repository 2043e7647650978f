import { compareCodeUnits } from './compare-code-units.js';
import type { RouteSpec } from './route-spec.js';
import { tagRoutes } from './tag-routes.js';
import { expandTemplates } from './template-expand.js';
import type { BuildProblem, DiscoverySnapshot, RouteTemplate } from './types.js';
import { validateRoutes } from './validate-routes.js';

/**
 * Every route the catalog and templates describe, before discovery data is applied: templates
 * expanded and validated (a bad template throws ConfigError), then tag routes (a bad or clashing tag
 * is a problem, never fatal). Template routes come first, in template order, then tag routes.
 * Both `buildTable` and `neededServices` start here, which is what makes them agree.
 */
export function collectRoutes(
  catalog: DiscoverySnapshot['catalog'],
  templates: readonly RouteTemplate[],
): { routes: RouteSpec[]; problems: BuildProblem[] } {
  const fromTemplates = validateRoutes(expandTemplates(templates, catalog));
  const fromTags = tagRoutes(catalog, fromTemplates);
  return { routes: [...fromTemplates, ...fromTags.routes], problems: fromTags.problems };
}

/** Sorted unique names of the services the routes send traffic (or mirrored copies) to. */
export function servicesOf(routes: readonly RouteSpec[]): string[] {
  const names = new Set<string>();
  for (const route of routes) {
    for (const d of route.to) names.add(d.service);
    const mirror = route.options?.mirror;
    if (mirror !== undefined) names.add(mirror.service);
  }
  return [...names].sort(compareCodeUnits);
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { buildTable } from '../../src/model/build-table.js';
import type { RouteTemplate } from '../../src/model/types.js';
import { discovery, instance, template } from './fixtures.js';

const snap = discovery([instance('s', 's-1', { tags: ['public'] }), instance('t', 't-1', { tags: ['public'] })]);
const to = [{ service: 's', weight: 1 }];
const A = 'templates/a.yaml';
const B = 'templates/b.yaml';

describe('fatal validation errors throw ConfigError naming the source', () => {
  const cases: [string, RouteTemplate[], string, RegExp][] = [
    ['duplicate route names', [template('r', '/a', to, { source: A }), template('r', '/b', to, { source: B })], B, /route "r": duplicate route name \(also defined in templates\/a\.yaml\)/],
    ['duplicate names from an each expansion', [template('fixed', '/{{service}}', [{ service: '{{service}}', weight: 1 }], { each: { tag: 'public' }, source: A })], A, /route "fixed": duplicate route name/],
    ['two routes with the same path', [template('r1', '/a', to, { source: A }), template('r2', '/a/', to, { source: B })], B, /route "r2": matches \/a like route "r1" \(templates\/a\.yaml\)/],
    ['two routes with the same host + path (host case differs)', [template('r1', '/', to, { host: 'API.x.com', source: A }), template('r2', '/', to, { host: 'api.x.com', source: A })], A, /route "r2": matches api\.x\.com\/ like route "r1"/],
    ['a negative weight', [template('r', '/', [{ service: 's', weight: -1 }], { source: A })], A, /route "r": destination "s" has weight -1/],
    ['a NaN weight', [template('r', '/', [{ service: 's', tag: 'v1', weight: Number.NaN }], { source: A })], A, /destination "s:v1" has weight NaN/],
    ['an infinite weight', [template('r', '/', [{ service: 's', weight: Number.POSITIVE_INFINITY }], { source: A })], A, /has weight Infinity/],
    ['a non-number weight', [template('r', '/', [{ service: 's', weight: '3' as unknown as number }], { source: A })], A, /has weight 3; weights must be finite numbers/],
    ['a route with no destinations', [template('r', '/', [], { source: A })], A, /route "r": route has no destinations/],
    ['an empty name', [template('', '/', to, { source: A })], A, /route "": route name is empty/],
    ['a blank name', [template('  ', '/', to, { source: A })], A, /route name is empty/],
    ['an empty service', [template('r', '/', [{ service: '', weight: 1 }], { source: A })], A, /empty service name/],
    ['an empty tag', [template('r', '/', [{ service: 's', tag: '', weight: 1 }], { source: A })], A, /destination "s" has an empty tag/],
    ['a destination listed twice', [template('r', '/', [{ service: 's', tag: 'v1', weight: 1 }, { service: 's', tag: 'v1', weight: 2 }], { source: A })], A, /destination "s:v1" is listed twice/],
    ['a path with an empty segment', [template('r', '/a//b', to, { source: A })], A, /match\.path: .*empty segment/],
    ['a strip with a query', [template('r', '/a', to, { strip: '/a?x', source: A })], A, /strip: .*"\?"/],
    ['a host with a port', [template('r', '/', to, { host: 'a.com:80', source: A })], A, /must not carry a port/],
    ['an empty host', [template('r', '/', to, { host: '', source: A })], A, /host is empty/],
    ['a placeholder without each', [template('{{service}}', '/', to, { source: A })], A, /has no "each"/],
  ];
  for (const [title, templates, source, message] of cases) {
    it(title, () => {
      assert.throws(() => buildTable(snap, {}, templates), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `ConfigError, got ${String(err)}`);
        assert.equal(err.code, 'SY_CONFIG_INVALID');
        assert.equal(err.source, source);
        assert.ok(err.message.startsWith(`${source}: `), err.message);
        assert.match(err.message, message);
        return true;
      });
    });
  }

  it('the same templates without the fault build', () => {
    const table = buildTable(snap, {}, [template('r1', '/a', to, { source: A }), template('r2', '/b', to, { host: 'api.x.com', source: B })]);
    assert.deepEqual(table.routes.map((r) => r.name), ['r1', 'r2']);
  });

  it('a zero weight is valid (the destination is simply not active)', () => {
    const table = buildTable(snap, {}, [template('r', '/', [{ service: 's', weight: 0 }, { service: 't', weight: 1 }])]);
    assert.deepEqual(table.routes[0]?.active.map((d) => d.key), ['t']);
  });

  it('the same path with and without a host is not a conflict', () => {
    const table = buildTable(snap, {}, [template('r1', '/a', to), template('r2', '/a', to, { host: 'h.com' })]);
    assert.equal(table.lookup('h.com', '/a')?.name, 'r2');
    assert.equal(table.lookup('x.com', '/a')?.name, 'r1');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { parseRouteOptions } from '../../src/model/route-options.js';
import { expandTemplates } from '../../src/model/template-expand.js';
import type { RouteOptions, RouteTemplate } from '../../src/model/types.js';
import { SOURCE, template } from './fixtures.js';

// Deliberately not in sorted order: expansion must sort.
const catalog = {
  zeta: ['public'],
  bb: ['public', 'v1'],
  b: ['internal'],
  alpha: ['public', 'v2'],
  consul: [],
};

const each = (e: RouteTemplate['each']): RouteTemplate =>
  template('{{service}}', '/', [{ service: '{{service}}', weight: 1 }], { host: '{{service}}.localhost', each: e });

describe('expandTemplates: which services', () => {
  const cases: [string, RouteTemplate['each'], string[]][] = [
    ['each by tag', { tag: 'public' }, ['alpha', 'bb', 'zeta']],
    ['each by service (exact name)', { service: 'b' }, ['b']],
    ['each by tag and service, both hold', { tag: 'public', service: 'bb' }, ['bb']],
    ['each by tag and service, tag missing', { tag: 'public', service: 'b' }, []],
    ['each by tag no service carries', { tag: 'nope' }, []],
    ['each by unknown service', { service: 'nope' }, []],
    ['each with no condition matches all', {}, ['alpha', 'b', 'bb', 'consul', 'zeta']],
  ];
  for (const [title, e, expected] of cases) {
    it(title, () => {
      assert.deepEqual(expandTemplates([each(e)], catalog).map((r) => r.name), expected);
    });
  }
});

describe('expandTemplates: replacement', () => {
  it('replaces {{service}} in name, host, path, strip, to[].service and to[].tag', () => {
    const t = template(
      'route-{{service}}',
      '/{{service}}/api',
      [{ service: '{{service}}', tag: '{{service}}-canary', weight: 3 }, { service: 'fixed', weight: 1 }],
      { host: '{{service}}.example.com', strip: '/{{service}}', each: { service: 'alpha' } },
    );
    assert.deepEqual(expandTemplates([t], catalog), [{
      name: 'route-alpha',
      hosts: ['alpha.example.com'],
      path: '/alpha/api',
      strip: '/alpha',
      to: [{ service: 'alpha', tag: 'alpha-canary', weight: 3 }, { service: 'fixed', weight: 1 }],
      origin: 'template',
      source: SOURCE,
    }]);
  });

  it('keeps a template without each literally, in template order', () => {
    const a = template('b-literal', '/b', [{ service: 's', weight: 2 }], { host: 'h.com' });
    const z = template('a-literal', '/a', [{ service: 's', weight: 1 }]);
    const out = expandTemplates([a, each({ tag: 'v2' }), z], catalog);
    assert.deepEqual(out.map((r) => r.name), ['b-literal', 'alpha', 'a-literal']);
    assert.deepEqual(out[0], { name: 'b-literal', hosts: ['h.com'], path: '/b', strip: undefined, to: [{ service: 's', weight: 2 }], origin: 'template', source: SOURCE });
  });

  it('replaces every occurrence', () => {
    const t = template('{{service}}-{{service}}', '/', [{ service: '{{service}}', weight: 1 }], { each: { service: 'b' } });
    assert.equal(expandTemplates([t], catalog)[0]?.name, 'b-b');
  });
});

describe('expandTemplates: placeholder errors', () => {
  const s = [{ service: 's', weight: 1 }];
  const cases: [string, RouteTemplate, RegExp][] = [
    ['name without each', template('{{service}}', '/', s), /name contains "\{\{" but the template has no "each"/],
    ['host without each', template('r', '/', s, { host: '{{service}}.x' }), /match\.host/],
    ['path without each', template('r', '/{{service}}', s), /match\.path/],
    ['strip without each', template('r', '/', s, { strip: '/{{service}}' }), /strip/],
    ['to.service without each', template('r', '/', [{ service: '{{service}}', weight: 1 }]), /to\[\]\.service/],
    ['to.tag without each', template('r', '/', [{ service: 's', tag: '{{service}}', weight: 1 }]), /to\[\]\.tag/],
    ['unknown placeholder with each', template('{{name}}', '/', s, { each: { tag: 'public' } }), /unknown placeholder/],
    ['unknown placeholder, no service matches', template('r', '/{{Service}}', s, { each: { tag: 'nope' } }), /match\.path has an unknown placeholder/],
    ['placeholder inside each', template('{{service}}', '/', s, { each: { service: '{{service}}' } }), /"each" must not contain/],
  ];
  for (const [title, t, message] of cases) {
    it(`${title} → ConfigError`, () => {
      assert.throws(() => expandTemplates([t], catalog), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.code, 'SY_CONFIG_INVALID');
        assert.equal(err.source, SOURCE);
        assert.match(err.message, new RegExp(`^${SOURCE}: `));
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

describe('expandTemplates: gateway options', () => {
  const withOptions = (t: RouteTemplate, input: Record<string, unknown>): RouteTemplate => {
    const options = parseRouteOptions(input, 'template');
    assert.ok(typeof options !== 'string', String(options));
    return { ...t, options: options as RouteOptions };
  };
  const perService = withOptions(template('{{service}}', '/{{service}}', [{ service: '{{service}}', weight: 1 }], { each: { tag: 'public' } }), {
    rewrite: { regex: '^/[^/]+(/.*)?$', to: '/{{service}}$1', host: '{{service}}.internal' },
    headers: { request: { set: { 'x-service': '{{service}}', 'x-fixed': 'a' } } },
    mirror: { service: '{{service}}-shadow', tag: 'shadow-{{service}}' },
  });

  it('fills {{service}} in the option fields that take it', () => {
    const [alpha] = expandTemplates([perService], catalog);
    assert.deepEqual(alpha!.options?.rewrite, { regex: '^/[^/]+(/.*)?$', to: '/alpha$1', host: 'alpha.internal' });
    assert.deepEqual(alpha!.options?.headers?.request?.set, [['x-service', 'alpha'], ['x-fixed', 'a']]);
    assert.deepEqual([alpha!.options?.mirror?.service, alpha!.options?.mirror?.tag], ['alpha-shadow', 'shadow-alpha']);
  });

  it('options without placeholders are shared by every expansion (the same object)', () => {
    const shared = withOptions(template('{{service}}', '/{{service}}', [{ service: '{{service}}', weight: 1 }], { each: { tag: 'public' } }), { sticky: { cookie: 'sid' } });
    const out = expandTemplates([shared], catalog);
    assert.equal(out[0]!.options, out[1]!.options);
  });

  const errors: [string, RouteTemplate, Record<string, typeof catalog[keyof typeof catalog]>, RegExp][] = [
    ['a placeholder in options without each', withOptions(template('r', '/', [{ service: 's', weight: 1 }]), { mirror: { service: '{{service}}' } }), catalog,
      /route "r": mirror\.service contains "\{\{" but the template has no "each"/],
    ['an unknown placeholder in options', { ...perService, options: { ...perService.options, redirect: undefined, rewrite: { host: '{{svc}}.internal' } } }, catalog,
      /rewrite\.host has an unknown placeholder/],
    ['a filled value that is invalid', perService, { 'bad name': ['public'] },
      /route "bad name": rewrite\.to: may not contain "#", whitespace or control characters/],
    ['cross-field rules for templates not read from YAML', withOptions(template('r', '/', [], { strip: '/x' }), { redirect: { to: '/y' } }), catalog,
      /route "r": strip: a redirect route sends nothing upstream/],
  ];
  for (const [title, t, cat, message] of errors) {
    it(`${title} → ConfigError`, () => {
      assert.throws(() => expandTemplates([t], cat), (err: unknown) => {
        assert.ok(err instanceof ConfigError, 'a ConfigError');
        assert.equal(err.source, SOURCE);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

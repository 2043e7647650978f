import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { expandTemplates } from '../../src/model/template-expand.js';
import type { RouteTemplate } from '../../src/model/types.js';
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

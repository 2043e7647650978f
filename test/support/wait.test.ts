import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from './wait.js';

describe('waitFor', () => {
  it('returns the first value the probe gives that is not undefined or false', async () => {
    let n = 0;
    assert.equal(await waitFor('the third call', () => (++n >= 3 ? n : false)), 3);
    assert.equal(await waitFor('an async value', async () => 'x'), 'x');
  });

  it('fails at the deadline naming what it waited for and the last error', async () => {
    await assert.rejects(waitFor('never', () => false, 50), /^Error: timed out after 50 ms waiting for never$/);
    await assert.rejects(waitFor('a throwing probe', () => { throw new Error('boom'); }, 50), /waiting for a throwing probe \(last error: boom\)/);
  });

  it('fails, instead of hanging, when a probe never settles', async () => {
    // Without the bound the await below would never return (the test runner would cancel it at
    // its own timeout, if one is set at all).
    await assert.rejects(waitFor('a stuck probe', () => new Promise<boolean>(() => undefined), 100), /a probe for a stuck probe did not settle within 100 ms/);
  });
});

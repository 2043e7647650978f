import type { Answer, QueryRequest } from './blocking-query.js';
import type { AclProbe, ConsulReader } from './consul-client.js';
import type { RequestBudget } from './request-budget.js';
import { ConsulWatchError } from './watch-error.js';

/**
 * A ConsulReader whose every request first takes a slot of the request budget and gives it back
 * when the answer is in (or the request failed): the provider's concurrent requests to the agent,
 * hence its connections, never exceed the budget, whatever the number of services.
 */
export class BudgetedReader implements ConsulReader {
  constructor(
    private readonly inner: ConsulReader,
    private readonly budget: RequestBudget,
  ) {}

  catalogServices(request: QueryRequest): Promise<Answer<unknown>> {
    return this.within(request.signal, () => this.inner.catalogServices(request));
  }

  catalogNodes(request: QueryRequest): Promise<Answer<unknown>> {
    return this.within(request.signal, () => this.inner.catalogNodes(request));
  }

  healthService(name: string, request: QueryRequest): Promise<Answer<unknown>> {
    return this.within(request.signal, () => this.inner.healthService(name, request));
  }

  healthState(request: QueryRequest): Promise<Answer<unknown>> {
    return this.within(request.signal, () => this.inner.healthState(request));
  }

  kvList(prefix: string, request: QueryRequest): Promise<Answer<unknown>> {
    return this.within(request.signal, () => this.inner.kvList(prefix, request));
  }

  leader(signal: AbortSignal): Promise<string> {
    return this.within(signal, () => this.inner.leader(signal));
  }

  aclProbe(signal: AbortSignal): Promise<AclProbe> {
    return this.within(signal, () => this.inner.aclProbe(signal));
  }

  close(): void {
    this.inner.close();
  }

  private async within<T>(signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    let release: () => void;
    try {
      release = await this.budget.acquire(signal);
    } catch (err) {
      throw new ConsulWatchError('request cancelled while waiting for a connection to Consul', 'reset', { cause: err });
    }
    try {
      return await call();
    } finally {
      release();
    }
  }
}

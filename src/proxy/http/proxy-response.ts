import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Exchange } from './exchange.js';

/** node's ServerResponse with a slot for its exchange, so shared listeners need no closure. */
export class ProxyResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  exchange: Exchange | undefined = undefined;
}

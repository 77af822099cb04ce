/**
 * The seam between Berth and the Agent SDK: everything Berth asks of the SDK at run time goes through an
 * `AgentRuntime`. The default is the real SDK; unit tests pass a fake one, so that the session state
 * machine, tasks and the warm pool can be tested without a subprocess. Types still come from the SDK.
 */
import {
  prewarm,
  query,
  type Options,
  type Query,
  type SDKUserMessage,
  type SpareProcess,
} from '@anthropic-ai/claude-agent-sdk';

export interface AgentRuntime {
  /** Starts a CLI subprocess for `prompt` (see the SDK's `query()`). */
  query(params: { prompt: string | AsyncIterable<SDKUserMessage>; options: Options }): Query;
  /** Starts a spare CLI subprocess before its session is known (see the SDK's `prewarm()`). */
  prewarm(params: { options: Options; initializeTimeoutMs?: number }): Promise<SpareProcess>;
}

/** The real Agent SDK. */
export const sdkRuntime: AgentRuntime = {
  query: (params) => query(params),
  prewarm: (params) => prewarm(params),
};

/**
 * What the Claude models cost, for the model proxy's metering (model-meter.ts): Anthropic's list prices in
 * USD per million tokens, as published and as the model catalog of the `claude` CLI that Berth runs
 * (@anthropic-ai/claude-agent-sdk 0.3.330) has them. Writing to the 5-minute prompt cache costs 1.25x the
 * input price, to the 1-hour cache 2x; reading from it 0.1x (less on the newest models).
 *
 * A model is priced by the longest prefix of its id in the table, so a dated id (`claude-sonnet-4-5-20250929`)
 * takes its model's price. A model of a known family that the table does not name (a newer Sonnet) takes the
 * dearest price of its family, and any other model the dearest price of all (Opus 4's): an unknown model is
 * over-counted, never free. The scripted model (src/testing/mock-model.ts) answers as the model it was asked
 * for (`claude-opus-5-5` by default), and is priced as that model; its replies report no tokens unless a
 * scenario or its `usage` option asks for some, so a scripted turn costs nothing.
 *
 * Not modelled: the long-context rates (prompts over 200k tokens on some models), the 1.1x of US-only
 * inference, batch discounts, and server tools (web search) billed per use.
 */

import { roundUsd } from '../usd.js';

/** USD per million tokens. */
export interface ModelPrice {
  input: number;
  output: number;
  /** Writing to the 5-minute prompt cache. */
  cacheWrite: number;
  /** Writing to the 1-hour prompt cache. */
  cacheWrite1h: number;
  cacheRead: number;
}

function price(input: number, output: number, cacheRead = input / 10): ModelPrice {
  return { input, output, cacheWrite: input * 1.25, cacheWrite1h: input * 2, cacheRead };
}

const OPUS_4 = price(15, 75);
const SONNET_3_15 = price(3, 15);
const HAIKU_4_5 = price(1, 5);

/** Model id prefixes and their prices; the longest matching prefix wins. */
export const MODEL_PRICES: ReadonlyArray<readonly [prefix: string, price: ModelPrice]> = [
  ['claude-opus-5-5', price(4, 20, 0.2)],
  ['claude-opus-5', price(5, 25)],
  ['claude-opus-4-5', price(5, 25)],
  ['claude-opus-4-6', price(5, 25)],
  ['claude-opus-4-7', price(5, 25)],
  ['claude-opus-4-8', price(5, 25)],
  // Opus 4 and 4.1 (`claude-opus-4-20250514`, `claude-opus-4-1-20250805`).
  ['claude-opus-4', OPUS_4],
  ['claude-3-opus', OPUS_4],
  ['claude-sonnet-5-5', price(2, 10, 0.1)],
  ['claude-sonnet-5', price(2, 10)],
  ['claude-sonnet-4', SONNET_3_15],
  ['claude-3-7-sonnet', SONNET_3_15],
  ['claude-3-5-sonnet', SONNET_3_15],
  ['claude-3-sonnet', SONNET_3_15],
  ['claude-haiku-5-5', price(0.1, 0.5, 0.01)],
  ['claude-haiku-4-5', HAIKU_4_5],
  ['claude-3-5-haiku', price(0.8, 4)],
  ['claude-3-haiku', price(0.25, 1.25, 0.03)],
  ['claude-fable-5-2', price(8, 40, 0.2)],
  ['claude-fable-5-1', price(10, 50, 0.25)],
  ['claude-fable-5', price(10, 50)],
  ['claude-mythos-5-2', price(8, 40, 0.2)],
  ['claude-mythos-5-1', price(10, 50, 0.25)],
  ['claude-mythos-5', price(10, 50)],
];

/** The dearest price of each family, for a model of the family that the table does not name. */
const FAMILY_PRICES: ReadonlyArray<readonly [family: string, price: ModelPrice]> = [
  ['opus', OPUS_4],
  ['sonnet', SONNET_3_15],
  ['haiku', HAIKU_4_5],
  ['fable', price(10, 50)],
  ['mythos', price(10, 50)],
];

/** The dearest price of the table: what a model Berth does not know is charged. */
export const UNKNOWN_MODEL_PRICE: ModelPrice = OPUS_4;

/** The price of `model`, and whether the table knows it (by its id, or its family's name in the id). */
export function priceOf(model: string): { price: ModelPrice; known: boolean } {
  const id = model.toLowerCase();
  let best: readonly [string, ModelPrice] | undefined;
  for (const entry of MODEL_PRICES) {
    if (id.startsWith(entry[0]) && (!best || entry[0].length > best[0].length)) best = entry;
  }
  if (best) return { price: best[1], known: true };
  const family = FAMILY_PRICES.find(([name]) => id.startsWith('claude-') && id.includes(name));
  return family ? { price: family[1], known: true } : { price: UNKNOWN_MODEL_PRICE, known: false };
}

/** Token counts of a Messages API `usage`, with the 1-hour part of the cache writes. */
export interface TokenCounts {
  input_tokens: number;
  output_tokens: number;
  /** All cache writes, the 1-hour ones included. */
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** The part of `cache_creation_input_tokens` written to the 1-hour cache. */
  cache_creation_1h_input_tokens: number;
}

/** What `tokens` of `model` cost, in USD, rounded to a billionth (see usd.ts). */
export function costUsd(model: string, tokens: TokenCounts): number {
  const { price: p } = priceOf(model);
  const oneHour = Math.min(tokens.cache_creation_1h_input_tokens, tokens.cache_creation_input_tokens);
  const perMillion =
    tokens.input_tokens * p.input +
    tokens.output_tokens * p.output +
    (tokens.cache_creation_input_tokens - oneHour) * p.cacheWrite +
    oneHour * p.cacheWrite1h +
    tokens.cache_read_input_tokens * p.cacheRead;
  return roundUsd(perMillion / 1e6);
}

/**
 * Amounts in USD as Berth reports and sums them: rounded to a billionth of a dollar. A cost is a sum of
 * token counts times prices per million tokens, which binary floating point cannot hold exactly
 * (0.04681199999999999), and every addition of two such amounts can add an error of its own. No price is
 * finer than a millionth of a dollar per token (USD 1 per million), so 1e-9 keeps every real digit of a
 * single token's cost and drops only the noise; a sum is rounded again after each addition, so the error
 * never builds up.
 */

/** How many parts of a dollar a cost is rounded to. */
const PARTS_PER_USD = 1e9;

/** `usd` rounded to the nearest billionth of a dollar (negative zero becomes 0). */
export function roundUsd(usd: number): number {
  return Math.round(usd * PARTS_PER_USD) / PARTS_PER_USD + 0;
}

/** `a + b`, rounded as {@link roundUsd}. */
export function addUsd(a: number, b: number): number {
  return roundUsd(a + b);
}

/**
 * `value`, or an Error naming `what` when it is undefined. For what a test reads by index or key
 * (`noUncheckedIndexedAccess`) and then uses: the test fails saying what was missing, where a
 * non-null assertion would fail later with a TypeError about something else.
 *
 * @example
 * const first = defined(fake.sessions[0], 'a first session');
 */
export function defined<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`expected ${what}, found none`);
  return value;
}

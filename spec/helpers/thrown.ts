/** What `fn` threw (failing the test when it returns). */
export function thrown(fn: () => unknown): Error & { code?: string; smtpCode?: number } {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

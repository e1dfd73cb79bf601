import { Observable } from 'rxjs';

/** Where a command writes, and what it reads from its environment: the process's, or a test's. */
export interface Io {
  /** Results: one line each. */
  readonly out: (line: string) => void;
  /** Diagnostics and progress. */
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** The width of standard error when it is a terminal (the live progress display redraws there). */
  readonly errColumns: number | undefined;
}

export const processIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (text) => process.stderr.write(text),
  env: process.env,
  get errColumns() {
    return process.stderr.isTTY ? process.stderr.columns || 80 : undefined;
  },
};

/** A reply on one line: the code and its text. */
export function replyText(reply: { code: number; message: string }): string {
  return `${reply.code} ${reply.message.split('\n').join(' / ')}`;
}

/** A debug event as `--dialogue` shows it, swaks-like: `->` we sent, `<-` we read, `==` the rest. */
export function dialogueLine(event: { direction: 'send' | 'receive' | 'info'; text: string }): string {
  const arrow = { send: ' -> ', receive: '<-  ', info: '=== ' }[event.direction];
  return event.text
    .replace(/\r?\n$/, '')
    .split(/\r?\n/)
    .map((line) => `${arrow}${line}\n`)
    .join('');
}

/** Runs `values$` to its end, handing each value to `next`. */
export function each<T>(values$: Observable<T>, next: (value: T) => void): Promise<void> {
  return new Promise((resolve, reject) => values$.subscribe({ next, error: reject, complete: resolve }));
}

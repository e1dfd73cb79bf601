import { OutcomeLine } from './journal';

type Terminal = Exclude<OutcomeLine['status'], 'sending'>;

/** Counts per outcome, for the display and the exit code. */
export class Tally {
  readonly counts: Record<Terminal, number> = { sent: 0, refused: 0, failed: 0, 'possibly-delivered': 0 };
  /** Recipients refused inside messages that were sent. */
  refusedRecipients = 0;
  readonly started = Date.now();

  constructor(readonly total: number) {}

  get done(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }

  add(status: Terminal, refusedRecipients: number): void {
    this.counts[status]++;
    this.refusedRecipients += refusedRecipients;
  }
}

const BAR = 24;

/**
 * One status line: bar (on a terminal), msg/s and ETA first (a narrow terminal cuts the end), counts per outcome,
 * connections, throttle level.
 */
export function statusLine(
  tally: Tally,
  pool: { readonly connections: number; readonly throttleLevel: number },
  bar: boolean,
): string {
  const seconds = Math.max((Date.now() - tally.started) / 1000, 0.001);
  const rate = tally.done / seconds;
  const left = tally.total - tally.done;
  const eta = rate > 0 ? `${Math.ceil(left / rate)}s` : '?';
  const fill = tally.total ? Math.round((BAR * tally.done) / tally.total) : BAR;
  const { sent, refused, failed } = tally.counts;
  return [
    bar ? `[${'#'.repeat(fill)}${'-'.repeat(BAR - fill)}]` : 'progress',
    `${tally.done}/${tally.total}`,
    `${rate.toFixed(0)} msg/s`,
    `ETA ${eta}`,
    `sent ${sent}`,
    `refused ${refused}`,
    `failed ${failed}`,
    `possibly-delivered ${tally.counts['possibly-delivered']}`,
    `rcpt-refused ${tally.refusedRecipients}`,
    `conn ${pool.connections}`,
    // The pool's adaptive throttle: above 0 while the server is asking it to slow down.
    `throttle ${pool.throttleLevel}`,
  ].join('  ');
}

/**
 * The live display: on a terminal (`columns` wide) one line redrawn in place (`\r`, then ANSI
 * "erase line") ten times a second, cut to the width (a wrapped line could not be redrawn);
 * elsewhere a plain line every few seconds. `stop` draws the last state.
 */
export function startDisplay(
  write: (text: string) => void,
  columns: number | undefined,
  line: (bar: boolean) => string,
): () => void {
  const tty = columns !== undefined;
  const draw = tty
    ? () => write(`\r\x1b[K${line(true).slice(0, Math.max(columns - 1, 20))}`)
    : () => write(`${line(false)}\n`);
  const timer = setInterval(draw, tty ? 100 : 2000);
  return () => {
    clearInterval(timer);
    draw();
    if (tty) write('\n');
  };
}

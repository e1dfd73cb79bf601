import * as fs from 'node:fs';
import * as path from 'node:path';

type Ports4 = { readonly mail: number; readonly rcpt: number; readonly data: number; readonly dot: number };

/**
 * What `mta/start.sh` wrote to `.mta/env.json`: every port, path and address of the private servers.
 * `.mta` links to the state directory outside the checkout (/var/tmp/rx-smtp-mta-*), where the
 * servers' users can reach it.
 */
export interface MtaEnv {
  readonly stateDir: string;
  readonly host: string;
  readonly ca: string;
  readonly postfix: {
    readonly plain: number;
    readonly implicitTls: number;
    readonly submission: number;
    /** anvil limits per client address (loopback not exempt), counted per `limits.perSeconds`. */
    readonly limited: number;
    readonly limits: {
      readonly connectionsPerClient: number;
      readonly messagesPerClient: number;
      readonly perSeconds: number;
    };
    readonly hostname: string;
    readonly log: string;
    readonly messageSizeLimit: number;
  };
  readonly dovecot: { readonly lmtp: number; readonly log: string; readonly authMechanisms: readonly string[] };
  readonly maildirOf: Readonly<Record<string, string>>;
  readonly users: Readonly<Record<string, string>>;
  readonly addresses: {
    readonly deliver: readonly string[];
    readonly overQuota: string;
    readonly unknown: string;
    readonly reject: string;
    readonly tempfail: string;
    readonly rejectSender: string;
    readonly tempfailSender: string;
    readonly discard: string;
  };
  readonly sinks: {
    readonly default: number;
    readonly lmtp: number;
    readonly heloOnly: number;
    readonly noPipelining: number;
    readonly abortMidData: number;
    readonly stall: { readonly connect: number; readonly rcpt: number; readonly data: number; readonly dot: number };
    readonly faults: { readonly q: Ports4; readonly Q: Ports4; readonly f: Ports4; readonly r: Ports4 };
  };
  readonly sinkDumps: string;
}

export const ENV_FILE = process.env.MTA_ENV ?? path.resolve(__dirname, '../../.mta/env.json');

/**
 * Reads the servers' description. Never skips: without it the suite fails,
 * saying how to start the servers.
 */
export function loadEnv(): MtaEnv {
  if (!fs.existsSync(ENV_FILE)) {
    throw new Error(
      `The real-MTA suite needs running servers, and ${ENV_FILE} does not exist.\n` +
        'Start them first (as root): bash mta/install.sh && bash mta/start.sh   (see mta/README.md)',
    );
  }
  const env = JSON.parse(fs.readFileSync(ENV_FILE, 'utf8')) as MtaEnv;
  if (!env.sinkDumps) throw new Error(`${ENV_FILE} predates the sink dumps: run bash mta/start.sh again`);
  return env;
}

export const env = loadEnv();
export const ca = fs.readFileSync(env.ca);
/** TLS options that trust the run's CA, with verification on (the client's default). */
export const tls = { ca };
export const USER = present(env.addresses.deliver[0], 'addresses.deliver[0]');
export const OTHER = present(env.addresses.deliver[1], 'addresses.deliver[1]');

/** The password of a user of the run's Dovecot. */
export function passwordOf(user: string): string {
  return present(env.users[user], `users[${JSON.stringify(user)}]`);
}

function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${ENV_FILE} has no ${what}: run bash mta/start.sh again`);
  return value;
}

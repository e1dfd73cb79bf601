/**
 * The nodemailer client of the bench: its SMTP pool (W1, W2, W5), a plain transport with a
 * streamed raw body (W3), and its DataStream (W4). Messages go as `raw` with an explicit envelope,
 * so no MIME is built: only the SMTP client is measured.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import nodemailer from 'nodemailer';
import {
  ClientArgs,
  FROM,
  Report,
  canonicalText,
  cycle,
  main,
  message1k,
  mixedChunks,
  recipients,
  seconds,
} from './common';

// No types ship for this internal module; it is the Transform nodemailer pipes every DATA body through.
// An internal module of nodemailer's, without typings of its own.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const DataStream = require('nodemailer/lib/smtp-connection/data-stream') as new () => import('node:stream').Transform;

/** W1, W2, W5: `count` messages through the pool, `concurrency` sendMail calls outstanding. */
async function pooled(args: ClientArgs, connections: number): Promise<Report> {
  const transport = nodemailer.createTransport({
    host: args.host,
    port: args.port,
    pool: true,
    maxConnections: connections,
    maxMessages: Infinity,
    ignoreTLS: true,
    name: 'bench.test',
  });
  const raw = message1k();
  const envelope = { from: FROM, to: recipients(args.rcpts) };
  let started = 0;
  let messages = 0;
  let failed = 0;
  let truncated = false;
  const t0 = seconds();
  const deadline = t0 + args.maxSeconds;
  const worker = async (): Promise<void> => {
    while (started < args.count) {
      if (seconds() >= deadline) {
        truncated = true;
        return;
      }
      started++;
      try {
        await transport.sendMail({ envelope, raw });
        messages++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  transport.close();
  return { messages, failed, bytes: 0, seconds: seconds() - t0, truncated };
}

/** W3: one streamed body of `count` bytes. */
async function bigBody(args: ClientArgs): Promise<Report> {
  const transport = nodemailer.createTransport({
    host: args.host,
    port: args.port,
    ignoreTLS: true,
    name: 'bench.test',
  });
  const t0 = seconds();
  await transport.sendMail({
    envelope: { from: FROM, to: recipients(1) },
    raw: Readable.from(canonicalText(args.count)),
  });
  transport.close();
  return { messages: 1, failed: 0, bytes: args.count, seconds: seconds() - t0, truncated: false };
}

/**
 * W4: DataStream on the same chunks as rx-smtp's encoder. `stream`: through a pipeline, the way
 * nodemailer uses it. `transform`: its `_transform` called directly, no stream machinery, which
 * is the strictest comparison with `BodyEncoder.push`.
 */
async function encoder(args: ClientArgs): Promise<Report> {
  const chunks = mixedChunks();
  const ds = new DataStream();
  let out = 0;
  const t0 = seconds();
  if (args.variant === 'transform') {
    const transform = ds as unknown as {
      _transform(chunk: Buffer, encoding: string, done: () => void): void;
      _flush(done: () => void): void;
      push(chunk: Buffer): boolean;
    };
    transform.push = (chunk) => {
      out += chunk.length;
      return true;
    };
    const done = (): void => undefined;
    for (const chunk of cycle(chunks, args.count)) transform._transform(chunk, 'buffer', done);
    transform._flush(done);
  } else {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out += chunk.length;
        callback();
      },
    });
    await pipeline(Readable.from(cycle(chunks, args.count)), ds, sink);
  }
  return {
    messages: 0,
    failed: 0,
    bytes: args.count,
    seconds: seconds() - t0,
    truncated: false,
    note: `${out} bytes out`,
  };
}

main((args) => {
  switch (args.workload) {
    case 'w1':
    case 'w2':
      return pooled(args, 1);
    case 'w5':
      return pooled(args, 8);
    case 'w3':
      return bigBody(args);
    case 'w4':
      return encoder(args);
    default:
      throw new Error(`nodemailer: no workload ${args.workload}`);
  }
});

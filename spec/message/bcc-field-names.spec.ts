import { stripBcc } from '../../lib/message/envelope';
import { parseHeaderBlock } from '../../lib/message/header-block';

const block = (...lines: string[]) =>
  parseHeaderBlock(new Uint8Array(Buffer.from(lines.map((l) => `${l}\r\n`).join(''))), new Uint8Array(0)).fields;

describe('stripBcc', () => {
  it('keeps fields whose names only contain "Bcc" (X-Original-Bcc, Bcc-Count)', () => {
    const fields = block(
      'From: a@example.com',
      'X-Original-Bcc: kept@example.com',
      'Bcc-Count: 2',
      'Bcc: gone@example.com',
    );
    expect(Buffer.from(stripBcc(fields)).toString('utf8')).toBe(
      'From: a@example.com\r\nX-Original-Bcc: kept@example.com\r\nBcc-Count: 2\r\n',
    );
  });
});

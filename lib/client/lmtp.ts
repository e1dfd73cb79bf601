import { LMTP_PORT } from '../transport/options';
import { SMTP } from './smtp';

/**
 * smtplib's `LMTP` (RFC 2033): LHLO instead of EHLO, port 2003 by default, and
 * a host starting with `/` is a Unix socket path. Unlike smtplib, `sendmail$`
 * reports the per-recipient replies LMTP sends after the body.
 */
export class LMTP extends SMTP {
  static override readonly defaultPort: number = LMTP_PORT;
  protected override readonly lmtp: boolean = true;
}

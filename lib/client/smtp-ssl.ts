import { SMTP_SSL_PORT } from '../transport/options';
import { SMTP } from './smtp';

/**
 * smtplib's `SMTP_SSL`: TLS from the first byte (RFC 8314 implicit TLS, port
 * 465). The certificate and host name are verified unless `tls` says otherwise.
 */
export class SMTP_SSL extends SMTP {
  static override readonly defaultPort: number = SMTP_SSL_PORT;
  protected override readonly secure: boolean = true;
}

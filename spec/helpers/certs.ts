import * as fs from 'node:fs';
import * as path from 'node:path';

const dir = path.join(__dirname, '..', 'fixtures');
const read = (name: string): string => fs.readFileSync(path.join(dir, name), 'utf8');

/** The test CA that signed `server` (localhost, 127.0.0.1). */
export const testCa = read('ca.pem');
/** A CA that signed nothing the tests serve. */
export const otherCa = read('other-ca.pem');
/** A server certificate for localhost signed by `testCa`. */
export const server = { cert: read('localhost.pem'), key: read('localhost-key.pem') };
/** A self-signed certificate for localhost. */
export const selfSigned = { cert: read('self-signed.pem'), key: read('self-signed-key.pem') };
/** Self-signed (its own CA), naming only the host name localhost. */
export const nameOnly = { cert: read('name-only.pem'), key: read('name-only-key.pem') };
/** Self-signed (its own CA), naming only the IP address 127.0.0.1. */
export const ipOnly = { cert: read('ip-only.pem'), key: read('ip-only-key.pem') };
/** Self-signed (its own CA), naming localhost in its SAN only: its subject has no common name. */
export const noCommonName = { cert: read('no-cn.pem'), key: read('no-cn-key.pem') };

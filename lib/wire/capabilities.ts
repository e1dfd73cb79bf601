/**
 * EHLO capability parsing, following smtplib's `esmtp_features` rules exactly:
 * the first line (the greeting text) is skipped, keywords are lower-cased,
 * `AUTH` values accumulate across lines, and the old-style `AUTH=` form
 * (sent by some servers for pre-RFC 2554 clients) is folded into `auth`.
 *
 * @param ehloMessage the EHLO reply's `message` (its lines joined with "\n").
 * @return keyword (lower-case) → parameters.
 */
export function parseCapabilities(ehloMessage: string): Record<string, string> {
  const features: Record<string, string> = {};
  for (const line of ehloMessage.split('\n').slice(1)) {
    const oldStyleAuth = /^auth=(.*)/i.exec(line)?.[1];
    if (oldStyleAuth !== undefined) {
      features.auth = `${features.auth ?? ''} ${oldStyleAuth}`;
      continue;
    }
    const match = /^([A-Za-z0-9][A-Za-z0-9-]*) ?/.exec(line);
    if (match?.[1] === undefined) continue;
    const keyword = match[1].toLowerCase();
    const params = line.slice(match[1].length).trim();
    features[keyword] = keyword === 'auth' ? `${features.auth ?? ''} ${params}` : params;
  }
  return features;
}

/** The AUTH mechanisms a server offers, upper-cased, in its order, without duplicates. */
export function authMechanisms(features: Record<string, string>): string[] {
  const names = (features.auth ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((m) => m.toUpperCase());
  return [...new Set(names)];
}

/** The SIZE limit a server advertises; 0 or absent means no limit. */
export function sizeLimit(features: Record<string, string>): number | undefined {
  const n = Number.parseInt(features.size ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

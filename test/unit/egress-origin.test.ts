import { describe, expect, it } from 'vitest';
import { EgressPolicy } from '#events/vm-config.ts';

const refusal = (origin: string) => {
  const parsed = EgressPolicy.safeParse({ allow: [origin] });
  return parsed.success ? undefined : parsed.error.issues[0]?.message;
};

describe('egress policy origins', () => {
  it('takes a scheme, a lowercase DNS name and maybe a port', () => {
    for (const origin of ['https://api.example.com', 'http://svc.example.net:8080', 'https://a_b.example.org', 'https://x1.example.io:65535'])
      expect(refusal(origin), origin).toBeUndefined();
  });

  it('refuses what the URL standard lets through but no DNS name has, paths, users, default ports, IP literals and localhost', () => {
    for (const origin of [
      'https://l*',
      'https://a..b',
      'https://api.example.com/',
      'https://user@api.example.com',
      'https://api.example.com:443',
      'ftp://api.example.com',
      'HTTPS://API.example.com',
    ])
      expect(refusal(origin), origin).toMatch(/^must be an origin/);
    expect(refusal('http://127.0.0.1')).toMatch(/^IP literals are refused/);
    expect(refusal('http://0x7f.1')).toMatch(/^IP literals are refused/);
    expect(refusal('https://api.localhost')).toMatch(/^localhost and \*\.localhost are refused/);
  });
});

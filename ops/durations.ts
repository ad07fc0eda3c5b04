const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `45m`, `12h`, `30d` → seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhd])$/.exec(text.trim());
  if (!match) throw new Error(`duration ${JSON.stringify(text)} is not like 90s, 45m, 12h or 30d`);
  return Number(match[1]) * UNITS[match[2]!]!;
}

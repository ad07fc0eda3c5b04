/** A table in columns for people; `--json` prints the API's answer instead. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (value: unknown) => (value === undefined || value === null ? '-' : Array.isArray(value) ? value.join(',') || '-' : String(value));
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row[column]).length)));
  const line = (values: string[]) =>
    values
      .map((value, index) => value.padEnd(widths[index]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((column) => column.toUpperCase())), ...rows.map((row) => line(columns.map((column) => cell(row[column]))))].join('\n');
}

/** One resource as `field: value` lines. */
export function details(resource: Record<string, unknown>): string {
  const width = Math.max(...Object.keys(resource).map((key) => key.length));
  return Object.entries(resource)
    .map(([key, value]) => `${key.padEnd(width)}  ${typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)}`)
    .join('\n');
}

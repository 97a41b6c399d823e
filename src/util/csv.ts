// Writing CSV (RFC 4180 quoting) for every command's tables; reading goes through csv-parse.

/** One field, quoted when it holds a quote, comma or line break. */
export function csvField(v: string | number | boolean): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One CSV row from fields; null and undefined are empty fields. */
export function csvRow(fields: readonly (string | number | boolean | null | undefined)[]): string {
  return fields.map((f) => (f === null || f === undefined ? '' : csvField(f))).join(',') + '\n';
}

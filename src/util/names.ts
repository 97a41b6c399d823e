/** A file-system-safe name from free text (letters, digits, `._-`; runs of anything else become `-`). */
export function slug(s: string, fallback = 'x'): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || fallback;
}

/**
 * One way to turn a zod error into words, used by the workflows, the CLI, the
 * configuration and the catalog reader. Pure: safe in the workflow sandbox.
 */
import type { z } from 'zod';

/** One invalid field: its dotted path (`extract.fps`, `(root)` for the whole value) and why. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** The issues of a zod error as `{path, message}` rows. */
export function fieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message }));
}

/**
 * A zod error in one line: `field "extract.fps": Too big: expected number to be <=60; field "label": ...`.
 *
 * @param error the zod error.
 * @param max at most this many fields are named (the rest are counted).
 */
export function formatIssues(error: z.ZodError, max = 5): string {
  const rows = fieldIssues(error);
  const shown = rows.slice(0, max).map((r) => `field "${r.path}": ${r.message}`);
  if (rows.length > max) shown.push(`and ${rows.length - max} more`);
  return shown.join('; ');
}

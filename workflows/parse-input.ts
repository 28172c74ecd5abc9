/**
 * The first thing every workflow that takes a request does: validate it against its zod
 * schema. Pure and deterministic (zod only): safe in the workflow sandbox.
 */
import type { z } from 'zod';
import { fieldIssues, formatIssues, InvalidInputError } from '../contracts';

/**
 * Parse a workflow's request with its schema (defaults filled in).
 *
 * @param schema the workflow's input schema (`NewCategoryInput`, `BackfillInput`, ...).
 * @param request what the caller passed.
 * @param what the workflow, as the message names it (`new-category`, `batch predict`).
 * @returns the parsed input.
 * @throws InvalidInputError (non-retryable: the run fails at once) whose message is
 *   `invalid <what> input: field "<path>": <why>; ...` (up to five fields) and whose
 *   `details[0]` lists every invalid field as `{path, message}`.
 */
export function parseInput<S extends z.ZodType>(schema: S, request: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(request);
  if (!parsed.success) {
    throw new InvalidInputError(`invalid ${what} input: ${formatIssues(parsed.error)}`, { details: [fieldIssues(parsed.error)] });
  }
  return parsed.data;
}

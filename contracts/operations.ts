/**
 * Operations: the schedules file (`infra/schedules.json`, applied by `reelset schedule
 * apply`), the run statuses and visibility queries of `reelset runs list`, and what the
 * run report activity returns. Pure: no Node built-ins; the CLI reads the file and
 * passes its parsed JSON here.
 */
import { z } from 'zod';
import { LabelName, PipelineOverrides } from './retrain';
import { SEARCH_ATTRIBUTES } from './temporal';

// --------------------------------------------------------------------- durations ---

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
};

/**
 * Milliseconds of a duration written for people: `90s`, `4 hours`, `1d`, `30 minutes`.
 *
 * @returns the duration in milliseconds, or undefined when `text` is not one.
 */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(text);
  const unit = m ? DURATION_UNITS[m[2]!.toLowerCase()] : undefined;
  return m && unit !== undefined ? Math.round(Number(m[1]) * unit) : undefined;
}

/** A duration string (see {@link parseDuration}) between `min` and `max` milliseconds, parsed to milliseconds. */
function duration(min: number, max: number) {
  return z.string().transform((s, ctx) => {
    const ms = parseDuration(s);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `not a duration: ${JSON.stringify(s)} (e.g. "90s", "4 hours", "1d")` });
      return z.NEVER;
    }
    if (ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `${s} is outside ${min / 1000} s .. ${max / 86_400_000} days` });
      return z.NEVER;
    }
    return ms;
  });
}

// --------------------------------------------------------------------- schedules ---

export const DAYS_OF_WEEK = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'] as const;
export const MONTHS = ['JANUARY', 'FEBRUARY', 'MARCH', 'APRIL', 'MAY', 'JUNE', 'JULY', 'AUGUST', 'SEPTEMBER', 'OCTOBER', 'NOVEMBER', 'DECEMBER'] as const;

const numbers = (min: number, max: number) => z.union([z.literal('*'), z.number().int().min(min).max(max), z.array(z.number().int().min(min).max(max)).min(1)]);
const names = <T extends readonly [string, ...string[]]>(values: T) => z.union([z.literal('*'), z.array(z.string().toUpperCase().pipe(z.enum(values))).min(1)]);

/**
 * When a schedule fires, as calendar fields (Temporal's `CalendarSpec`, a second matches
 * when every field matches). A field is a value, a list of values or `"*"`; `second`,
 * `minute` and `hour` default to 0, the others to `"*"`. `{"hour": 2, "minute": 30}` is
 * 02:30:00 every day in the schedule's time zone.
 */
export const ScheduleCalendar = z.strictObject({
  second: numbers(0, 59).default(0),
  minute: numbers(0, 59).default(0),
  hour: numbers(0, 23).default(0),
  dayOfMonth: numbers(1, 31).default('*'),
  month: names(MONTHS).default('*'),
  dayOfWeek: names(DAYS_OF_WEEK).default('*'),
  comment: z.string().max(200).optional(),
});
export type ScheduleCalendar = z.infer<typeof ScheduleCalendar>;

/** Temporal's overlap policies, as the file names them (lower case). */
export const OVERLAP_POLICIES = ['skip', 'buffer_one', 'buffer_all', 'cancel_other', 'terminate_other', 'allow_all'] as const;
export type OverlapPolicyName = (typeof OVERLAP_POLICIES)[number];

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * One schedule of the retraining, as declared in `infra/schedules.json`. Every field but
 * `id`, `calendars` and `timeZone` has a default; docs/operations.md#the-schedule explains the chosen ones.
 */
export const ScheduleConfig = z.strictObject({
  /** Schedule id in Temporal (also the prefix of the workflow ids it starts). */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and "-", at most 63'),
  /** What it is for, shown as the schedule's note when it is created. */
  description: z.string().max(500).default(''),
  /** When it fires (one or more calendars, in `timeZone`). */
  calendars: z.array(ScheduleCalendar).min(1).max(16),
  /** IANA time zone of the calendars, e.g. `UTC`, `Europe/Paris` (daylight saving applies). */
  timeZone: z.string().refine(validTimeZone, 'not an IANA time zone (e.g. "UTC", "Europe/Paris")'),
  /** Labels to retrain: `all` (every label with a published model) or a list. */
  labels: z.union([z.literal('all'), z.array(LabelName).min(1)]).default('all'),
  /** Labels retrained at once by the fan-out. */
  concurrency: z.number().int().positive().max(64).default(2),
  /** What happens when a run is still going at the next fire time. */
  overlap: z.enum(OVERLAP_POLICIES).default('skip'),
  /** After downtime, fire times missed by at most this long are still run (then at most one, with `skip`). */
  catchupWindow: duration(10_000, 365 * 86_400_000).prefault('4 hours'),
  /** Pause the schedule when a run it started fails (an operator unpauses it). */
  pauseOnFailure: z.boolean().default(true),
  /** Start each run up to this long after its fire time, at random (spreads load); `0s` for none. */
  jitter: duration(0, 86_400_000).prefault('0s'),
  /** Pipeline parameters over those of each label's last run. */
  overrides: PipelineOverrides,
  /** Retrain even when nothing changed (normally false). */
  force: z.boolean().default(false),
  /** State when the schedule is created (`apply` never changes an existing schedule's pause state). */
  paused: z.boolean().default(false),
});
export type ScheduleConfig = z.infer<typeof ScheduleConfig>;

/** The schedules file. */
export const SchedulesFile = z
  .strictObject({
    $comment: z.string().optional(),
    schedules: z.array(ScheduleConfig).min(1),
  })
  .superRefine((f, ctx) => {
    const seen = new Set<string>();
    f.schedules.forEach((s, i) => {
      if (seen.has(s.id)) ctx.addIssue({ code: 'custom', path: ['schedules', i, 'id'], message: `duplicate schedule id ${JSON.stringify(s.id)}` });
      seen.add(s.id);
    });
  });
export type SchedulesFile = z.infer<typeof SchedulesFile>;

/** The values a calendar field matches, sorted (numbers; names as their index: SUNDAY = 0, JANUARY = 1). */
export type CalendarValues = Record<'second' | 'minute' | 'hour' | 'dayOfMonth' | 'month' | 'dayOfWeek', number[]>;

const FIELD_RANGE: Record<keyof CalendarValues, [number, number]> = {
  second: [0, 59],
  minute: [0, 59],
  hour: [0, 23],
  dayOfMonth: [1, 31],
  month: [1, 12],
  dayOfWeek: [0, 6],
};

function nameIndex(field: keyof CalendarValues, v: number | string): number {
  if (typeof v === 'number') return v;
  if (field === 'month') return MONTHS.indexOf(v as (typeof MONTHS)[number]) + 1;
  return DAYS_OF_WEEK.indexOf(v as (typeof DAYS_OF_WEEK)[number]);
}

/**
 * The set of values each field of a calendar matches, from either form: the file's
 * ({@link ScheduleCalendar}) or Temporal's description (ranges `{start, end, step}`, names
 * for months and days). Two calendars fire at the same seconds exactly when their values
 * are equal, whatever ranges the server chose to store them as; `reelset schedule apply`
 * compares them this way.
 */
export function calendarValues(cal: Record<string, unknown>): CalendarValues {
  const out = {} as CalendarValues;
  for (const field of Object.keys(FIELD_RANGE) as Array<keyof CalendarValues>) {
    const [lo, hi] = FIELD_RANGE[field];
    const raw = cal[field];
    const values = new Set<number>();
    const add = (v: unknown) => {
      if (v === '*' || v === undefined) {
        const dflt = v === undefined && (field === 'second' || field === 'minute' || field === 'hour') ? [0] : undefined;
        for (const x of dflt ?? Array.from({ length: hi - lo + 1 }, (_, i) => lo + i)) values.add(x);
      } else if (typeof v === 'number' || typeof v === 'string') values.add(nameIndex(field, v));
      else if (v && typeof v === 'object' && 'start' in v) {
        const r = v as { start: number | string; end?: number | string; step?: number };
        const start = nameIndex(field, r.start);
        const end = r.end === undefined ? start : nameIndex(field, r.end);
        const step = r.step && r.step > 0 ? r.step : 1;
        for (let x = start; x <= end; x += step) values.add(x);
      }
    };
    if (Array.isArray(raw)) {
      if (raw.length === 0) add('*');
      raw.forEach(add);
    } else add(raw);
    out[field] = [...values].sort((a, b) => a - b);
  }
  return out;
}

// -------------------------------------------------------------------------- runs ---

/** Execution statuses `reelset runs list --status` accepts, and their names in visibility queries. */
export const RUN_STATUSES = {
  running: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  canceled: 'Canceled',
  terminated: 'Terminated',
  timed_out: 'TimedOut',
  continued_as_new: 'ContinuedAsNew',
} as const;
export type RunStatusName = keyof typeof RUN_STATUSES;

/** A string literal for a visibility query: double-quoted, quotes and backslashes escaped. */
export function queryLiteral(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * The visibility query of `reelset runs list`: runs of reelset (workflows that set the
 * `ReelsetStage` search attribute: new-category, retrain, the fan-out; not their
 * per-video children), optionally of one label and one execution status.
 *
 * @example runsListQuery({label: 'cup', status: 'failed'})
 *   === 'ReelsetStage IS NOT NULL AND ReelsetLabel = "cup" AND ExecutionStatus = "Failed"'
 */
export function runsListQuery(filter: { label?: string; status?: RunStatusName; type?: string }): string {
  const parts = [`${SEARCH_ATTRIBUTES.stage} IS NOT NULL`];
  if (filter.label !== undefined) parts.push(`${SEARCH_ATTRIBUTES.label} = ${queryLiteral(filter.label)}`);
  if (filter.status !== undefined) parts.push(`ExecutionStatus = ${queryLiteral(RUN_STATUSES[filter.status])}`);
  if (filter.type !== undefined) parts.push(`WorkflowType = ${queryLiteral(filter.type)}`);
  return parts.join(' AND ');
}

// ------------------------------------------------------------------------ report ---

/** What `writeRunReport` returns. */
export interface RunReportSummary {
  /** `runs/<id>/report.html`. */
  reportKey: string;
  bytes: number;
  /** Charts drawn (training curves, confusion matrices, precision/recall). */
  charts: number;
  contactSheets: number;
  /** Steps with a manifest. */
  steps: number;
}

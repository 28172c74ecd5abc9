/**
 * A small typed client of Label Studio's REST API (checked against 1.23.2), for the
 * labelling activities, the gateway and the tests. Authenticates with the legacy API
 * token (`Authorization: Token ...`); the token never appears in an error message or log.
 */
import { LabelStudioError, TransientError } from '../contracts';

/** A task as the API returns it (`fields=all` adds annotations and predictions). */
export interface LsTask {
  id: number;
  project: number;
  updated_at?: string;
  data: Record<string, unknown>;
  overlap: number;
  is_labeled: boolean;
  total_annotations?: number;
  cancelled_annotations?: number;
  annotations?: LsAnnotation[];
  predictions?: unknown[];
}

/** One annotation: `completed_by` is a user id (or the user, when expanded). */
export interface LsAnnotation {
  id: number;
  task: number;
  project?: number;
  completed_by: number | { id: number; email?: string };
  result: LsResult[];
  was_cancelled: boolean;
  updated_at: string;
  created_at?: string;
}

/** One region of an annotation's or prediction's result. */
export interface LsResult {
  from_name: string;
  to_name: string;
  type: string;
  value: { choices?: string[] } & Record<string, unknown>;
}

/** A Label Studio project as its REST API returns it (`/api/projects/<id>`; fields reelset reads). */
export interface LsProject {
  id: number;
  title: string;
  label_config: string;
  maximum_annotations: number;
  expert_instruction?: string;
  task_number?: number;
  num_tasks_with_annotations?: number;
  finished_task_number?: number;
}

/** A Label Studio webhook (`/api/webhooks/<id>`): where events go, with which headers and for which actions. */
export interface LsWebhook {
  id: number;
  project: number | null;
  url: string;
  send_payload: boolean;
  send_for_all_actions: boolean;
  headers: Record<string, string>;
  is_active: boolean;
  actions: string[];
}

/** A Label Studio S3 import storage (`/api/storages/s3/<id>`): the bucket and prefix it serves images from. */
export interface LsS3Storage {
  id: number;
  project: number;
  title: string;
  bucket: string;
  prefix: string | null;
  s3_endpoint: string | null;
  presign: boolean;
  use_blob_urls: boolean;
  region_name: string | null;
}

/** A task to import: its data and pre-annotations. */
export interface LsImportTask {
  data: Record<string, unknown>;
  predictions?: Array<{ model_version: string; score?: number; result: LsResult[] }>;
}

/** A Data Manager filter item, e.g. `{filter: 'filter:tasks:data.runId', operator: 'equal', type: 'String', value: 'x'}`. */
export interface LsFilter {
  filter: string;
  operator: string;
  type: string;
  value: unknown;
}

/** The single choice of an annotation's result on the control named `fromName`, or null (empty, skipped, another control). */
export function choiceOf(result: readonly LsResult[] | undefined, fromName = 'label'): string | null {
  for (const r of result ?? []) {
    if (r.type === 'choices' && r.from_name === fromName && Array.isArray(r.value?.choices) && r.value.choices.length > 0) {
      const c = r.value.choices[0];
      if (typeof c === 'string' && c.length > 0) return c;
    }
  }
  return null;
}

/** The user id of an annotation's `completed_by`. */
export function annotatorIdOf(a: Pick<LsAnnotation, 'completed_by'>): number {
  return typeof a.completed_by === 'number' ? a.completed_by : a.completed_by.id;
}

/**
 * Label Studio's REST API.
 *
 * Every call has a timeout (30 s). Unreachable servers, timeouts and 5xx answers throw a
 * retryable {@link TransientError} naming the address; other non-2xx answers a
 * non-retryable {@link LabelStudioError} naming the call, the status and Label Studio's
 * `detail`. Methods documented as such return `undefined` for 404.
 */
export class LabelStudioClient {
  private users = new Map<number, string>();

  /**
   * @param baseUrl e.g. `http://127.0.0.1:8080` (no trailing slash needed).
   * @param token the API token (legacy `Token` scheme).
   */
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs = 30_000,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  /** The page of a project's data manager, where people open the labelling stream. */
  projectUrl(projectId: number): string {
    return `${this.baseUrl}/projects/${projectId}/data`;
  }

  private async call<T>(
    method: string,
    path: string,
    opts: { body?: unknown; query?: Record<string, string | number>; allow404?: boolean } = {},
  ): Promise<T | undefined> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, String(v));
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          Authorization: `Token ${this.token}`,
          ...(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
          Accept: 'application/json',
        },
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new TransientError(
        `Label Studio not reachable at ${this.baseUrl} (${method} ${path}: ${cause}); start it with \`bash infra/services.sh start label-studio\``,
      );
    }
    if (res.status === 404 && opts.allow404) {
      await res.body?.cancel();
      return undefined;
    }
    const text = await res.text();
    if (res.status >= 500) throw new TransientError(`Label Studio answered ${res.status} to ${method} ${path}: ${detail(text)}`);
    if (!res.ok) throw new LabelStudioError(`Label Studio answered ${res.status} to ${method} ${path}: ${detail(text)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** True when `/health/` answers UP (no authentication). */
  async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.baseUrl}/health/`, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { status?: string };
      return res.ok && body.status === 'UP';
    } catch {
      return false;
    }
  }

  /** The token's user. */
  async whoami(): Promise<{ id: number; email: string }> {
    return (await this.call<{ id: number; email: string }>('GET', '/api/current-user/whoami'))!;
  }

  /** Email of a user id (the organisation's users, cached; refreshed once for an unknown id); `user-<id>` when unknown. */
  async userEmail(id: number): Promise<string> {
    if (!this.users.has(id)) {
      const users = (await this.call<Array<{ id: number; email: string }>>('GET', '/api/users/')) ?? [];
      for (const u of users) this.users.set(u.id, u.email);
    }
    return this.users.get(id) ?? `user-${id}`;
  }

  /** Projects whose title is exactly `title`. */
  async findProjects(title: string): Promise<LsProject[]> {
    const r = await this.call<{ results: LsProject[] }>('GET', '/api/projects/', { query: { title, page_size: 100 } });
    return (r?.results ?? []).filter((p) => p.title === title);
  }

  /** A project, or undefined when it does not exist (deleted by someone). */
  async getProject(id: number): Promise<LsProject | undefined> {
    return this.call<LsProject>('GET', `/api/projects/${id}/`, { allow404: true });
  }

  async createProject(body: Record<string, unknown>): Promise<LsProject> {
    return (await this.call<LsProject>('POST', '/api/projects/', { body }))!;
  }

  /** Delete a project with its tasks, annotations, storages and webhooks (tests clean up with it). */
  async deleteProject(id: number): Promise<void> {
    await this.call('DELETE', `/api/projects/${id}/`, { allow404: true });
  }

  async updateProject(id: number, body: Record<string, unknown>): Promise<LsProject> {
    return (await this.call<LsProject>('PATCH', `/api/projects/${id}/`, { body }))!;
  }

  /**
   * Import tasks with their pre-annotations (synchronous in Label Studio).
   *
   * @returns the new task ids, in the order of `tasks`.
   */
  async importTasks(projectId: number, tasks: LsImportTask[]): Promise<number[]> {
    const r = await this.call<{ task_ids?: number[]; task_count: number }>('POST', `/api/projects/${projectId}/import`, {
      body: tasks,
      query: { return_task_ids: 'true' },
    });
    const ids = r?.task_ids ?? [];
    if (ids.length !== tasks.length) throw new LabelStudioError(`Label Studio imported ${ids.length} of ${tasks.length} tasks into project ${projectId}`);
    return ids;
  }

  /**
   * One page of a project's tasks with annotations and predictions (`fields=all`).
   *
   * @param filters Data Manager filter items (conjunction `and`).
   */
  async listTasks(projectId: number, opts: { page?: number; pageSize?: number; filters?: LsFilter[] } = {}): Promise<{ total: number; tasks: LsTask[] }> {
    const query: Record<string, string | number> = { project: projectId, fields: 'all', page: opts.page ?? 1, page_size: opts.pageSize ?? 100 };
    if (opts.filters?.length) query.query = JSON.stringify({ filters: { conjunction: 'and', items: opts.filters } });
    const r = await this.call<{ total: number; tasks: LsTask[] }>('GET', '/api/tasks/', { query, allow404: true });
    return r ?? { total: 0, tasks: [] };
  }

  /** Every task of a project matching `filters`, page after page (`onPage` after each, e.g. to heartbeat). */
  async allTasks(projectId: number, filters: LsFilter[] = [], onPage?: (seen: number, total: number) => void): Promise<LsTask[]> {
    const out: LsTask[] = [];
    for (let page = 1; ; page++) {
      const r = await this.listTasks(projectId, { page, pageSize: 100, filters });
      out.push(...r.tasks);
      onPage?.(out.length, r.total);
      if (r.tasks.length === 0 || out.length >= r.total) return out;
    }
  }

  /**
   * The id, last change, overlap and data of tasks (no annotations, no predictions, URIs not
   * resolved): the cheap listing a reconciliation starts with. A task's `updated_at`
   * moves whenever one of its annotations is created, changed or deleted.
   *
   * @param ids only these tasks (asked 200 at a time); all of the project's without.
   */
  async taskSummaries(
    projectId: number,
    ids?: number[],
    onPage?: (seen: number) => void,
  ): Promise<Array<{ id: number; updated_at: string; overlap: number; data: Record<string, unknown> }>> {
    type Row = { id: number; updated_at: string; overlap: number; data: Record<string, unknown> };
    const out: Row[] = [];
    const base = { project: projectId, fields: 'task_only', include: 'id,updated_at,overlap,data', resolve_uri: 'false', page_size: 200 };
    const chunks = ids ? Array.from({ length: Math.ceil(ids.length / 200) }, (_, i) => ids.slice(i * 200, i * 200 + 200)) : [undefined];
    for (const chunk of chunks) {
      for (let page = 1; ; page++) {
        const query: Record<string, string | number> = { ...base, page };
        if (chunk) query.query = JSON.stringify({ selectedItems: { all: false, included: chunk } });
        const r = await this.call<{ total: number; tasks: Row[] }>('GET', '/api/tasks/', { query, allow404: true });
        const got = r?.tasks ?? [];
        out.push(...got);
        onPage?.(out.length);
        if (got.length < 200) break;
      }
    }
    return out;
  }

  /** Tasks with their annotations (full objects), 100 ids per request, URIs not resolved. */
  async tasksWithAnnotations(projectId: number, ids: number[]): Promise<LsTask[]> {
    const out: LsTask[] = [];
    for (let i = 0; i < ids.length; i += 100) {
      const chunk = ids.slice(i, i + 100);
      const r = await this.call<{ tasks: LsTask[] }>('GET', '/api/tasks/', {
        query: {
          project: projectId,
          fields: 'all',
          resolve_uri: 'false',
          page_size: 100,
          query: JSON.stringify({ selectedItems: { all: false, included: chunk } }),
        },
        allow404: true,
      });
      out.push(...(r?.tasks ?? []));
    }
    return out;
  }

  /** A task with its annotations, or undefined when it was deleted. */
  async getTask(id: number): Promise<LsTask | undefined> {
    return this.call<LsTask>('GET', `/api/tasks/${id}/`, { allow404: true });
  }

  /** Delete a task with its annotations (404 is fine). */
  async deleteTask(id: number): Promise<void> {
    await this.call('DELETE', `/api/tasks/${id}/`, { allow404: true });
  }

  async patchTask(id: number, body: Record<string, unknown>): Promise<LsTask> {
    return (await this.call<LsTask>('PATCH', `/api/tasks/${id}/`, { body }))!;
  }

  /** An annotation, or undefined when it was deleted. */
  async getAnnotation(id: number): Promise<LsAnnotation | undefined> {
    return this.call<LsAnnotation>('GET', `/api/annotations/${id}/`, { allow404: true });
  }

  /** Make an annotation as the token's user (what a person's Submit does). */
  async createAnnotation(taskId: number, body: { result: LsResult[]; was_cancelled?: boolean; lead_time?: number }): Promise<LsAnnotation> {
    return (await this.call<LsAnnotation>('POST', `/api/tasks/${taskId}/annotations/`, { body }))!;
  }

  async updateAnnotation(id: number, body: { result: LsResult[] }): Promise<LsAnnotation> {
    return (await this.call<LsAnnotation>('PATCH', `/api/annotations/${id}/`, { body }))!;
  }

  async deleteAnnotation(id: number): Promise<void> {
    await this.call('DELETE', `/api/annotations/${id}/`, { allow404: true });
  }

  async listWebhooks(projectId: number): Promise<LsWebhook[]> {
    return (await this.call<LsWebhook[]>('GET', '/api/webhooks/', { query: { project: projectId } })) ?? [];
  }

  async createWebhook(body: Omit<LsWebhook, 'id' | 'is_active'>): Promise<LsWebhook> {
    return (await this.call<LsWebhook>('POST', '/api/webhooks/', { body }))!;
  }

  async updateWebhook(id: number, body: Partial<LsWebhook>): Promise<LsWebhook> {
    return (await this.call<LsWebhook>('PATCH', `/api/webhooks/${id}/`, { body }))!;
  }

  async listS3Storages(projectId: number): Promise<LsS3Storage[]> {
    return (await this.call<LsS3Storage[]>('GET', '/api/storages/s3/', { query: { project: projectId } })) ?? [];
  }

  async createS3Storage(body: Record<string, unknown>): Promise<LsS3Storage> {
    return (await this.call<LsS3Storage>('POST', '/api/storages/s3/', { body }))!;
  }

  async updateS3Storage(id: number, body: Record<string, unknown>): Promise<LsS3Storage> {
    return (await this.call<LsS3Storage>('PATCH', `/api/storages/s3/${id}/`, { body }))!;
  }

  /** The organisation's invite link (path), for new people to sign up. */
  async inviteUrl(): Promise<string> {
    const r = await this.call<{ invite_url: string }>('GET', '/api/invite');
    return `${this.baseUrl}${r!.invite_url}`;
  }
}

/** Label Studio's `detail` (or the start of the body), one line, at most 300 characters. */
function detail(text: string): string {
  try {
    const j = JSON.parse(text) as { detail?: unknown; validation_errors?: unknown };
    const d = j.validation_errors ?? j.detail ?? j;
    return JSON.stringify(d).slice(0, 300);
  } catch {
    return text.replace(/\s+/g, ' ').slice(0, 300);
  }
}

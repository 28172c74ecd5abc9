/**
 * Label Studio people for tests: sign up through the organisation's invite link (as a
 * new colleague would), then read the person's API token from their session.
 */
import { LabelStudioClient, type LsResult } from '../../lib/label-studio';

/** A person who labels: email, password (for the browser) and an API client acting as them. */
export interface Person {
  email: string;
  password: string;
  id: number;
  /** Their API token (legacy scheme). */
  token: string;
  client: LabelStudioClient;
}

function cookiesOf(res: Response, jar: Map<string, string>): void {
  for (const c of res.headers.getSetCookie()) {
    const [kv] = c.split(';');
    const i = kv!.indexOf('=');
    jar.set(kv!.slice(0, i).trim(), kv!.slice(i + 1).trim());
  }
}
const cookieHeader = (jar: Map<string, string>) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');

/**
 * Sign a new person up with the admin's invite link and return them with their token.
 *
 * @throws Error when the sign-up form or the token call does not answer as Label Studio 1.23 does.
 */
export async function signUp(admin: LabelStudioClient, email: string, password: string): Promise<Person> {
  const invite = await admin.inviteUrl();
  const jar = new Map<string, string>();
  const page = await fetch(invite, { redirect: 'manual' });
  cookiesOf(page, jar);
  await page.text();
  const csrf = jar.get('csrftoken');
  if (!csrf) throw new Error(`no csrftoken cookie from ${invite}`);
  const form = new URLSearchParams({ csrfmiddlewaretoken: csrf, email, password });
  const res = await fetch(invite, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookieHeader(jar), Referer: invite },
    body: form,
  });
  cookiesOf(res, jar);
  await res.text();
  if (res.status !== 302) throw new Error(`sign-up of ${email} answered ${res.status}`);
  const tok = await fetch(`${admin.baseUrl}/api/current-user/token`, { headers: { Cookie: cookieHeader(jar) } });
  const { token } = (await tok.json()) as { token: string };
  const client = new LabelStudioClient(admin.baseUrl, token);
  const me = await client.whoami();
  return { email, password, id: me.id, token, client };
}

/** The result of choosing `choice` in reelset's label configuration. */
export function choose(choice: string): LsResult[] {
  return [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [choice] } }];
}

import { promises as fs } from 'node:fs';

/**
 * Processes whose command line contains `text` (read from /proc, Linux only), e.g. an
 * ffmpeg child reading a file under a given temporary directory.
 *
 * @returns `{ pid, cmdline }` for each, zombies excluded.
 */
export async function processesMentioning(text: string): Promise<Array<{ pid: number; cmdline: string }>> {
  const found: Array<{ pid: number; cmdline: string }> = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      if (!cmdline.includes(text)) continue;
      const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8');
      if (/\)\s+Z\s/.test(stat)) continue;
      found.push({ pid: Number(entry), cmdline });
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

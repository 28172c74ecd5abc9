/** Content hashes (sha256, hex) of bytes and of files, streamed. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Lower-case hex sha256 of bytes or a UTF-8 string. */
export function sha256Hex(data: Buffer | Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Lower-case hex sha256 of a file, read as a stream (constant memory).
 *
 * @throws the file system's error (ENOENT, EACCES) when the file cannot be read.
 */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

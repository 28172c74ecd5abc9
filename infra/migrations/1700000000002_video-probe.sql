-- Up Migration
-- What ffprobe (and the truncation check) found in a video's content, cached by the
-- first extraction: a VideoProbe object, or {"error": "<reason>"} for a file that
-- cannot be used. Content-addressed (sha256), so it never goes stale.
ALTER TABLE videos ADD COLUMN probe jsonb;

-- Down Migration
ALTER TABLE videos DROP COLUMN probe;

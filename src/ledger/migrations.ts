/**
 * Schema migrations, applied in order inside one transaction each; `PRAGMA user_version` holds the
 * number applied. Never edit a shipped migration: add the next one.
 */
export const MIGRATIONS: readonly string[] = [
  /* 1: jobs, ops, attempts, runs */ `
  CREATE TABLE jobs (
    key TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    doi TEXT,
    canonical_url TEXT,
    urls TEXT NOT NULL,
    expected_sha256 TEXT,
    source TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'done', 'failed')),
    status TEXT,
    reason TEXT,
    http_status INTEGER,
    url TEXT,
    final_url TEXT,
    sha256 TEXT,
    bytes INTEGER,
    path TEXT,
    content_type TEXT,
    etag TEXT,
    last_modified TEXT,
    resumed_from INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    elapsed_ms INTEGER,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    seen_run TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX jobs_state ON jobs (state);
  CREATE INDEX jobs_sha256 ON jobs (sha256);
  CREATE TABLE ops (
    key TEXT PRIMARY KEY,
    job_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('started', 'done')),
    result TEXT,
    owner TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX ops_job ON ops (job_key);
  CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    job_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    url TEXT NOT NULL,
    final_url TEXT,
    http_status INTEGER,
    bytes INTEGER NOT NULL DEFAULT 0,
    elapsed_ms INTEGER NOT NULL,
    error TEXT,
    resume_from INTEGER,
    resume_decision TEXT,
    started_at INTEGER NOT NULL
  );
  CREATE INDEX attempts_job ON attempts (job_key);
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    argv TEXT NOT NULL,
    counts TEXT,
    exit_code INTEGER
  );
  `,
  /* 2: validators of each part in progress, so a resume never splices two versions */ `
  CREATE TABLE parts (
    job_key TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    total INTEGER,
    started_at INTEGER NOT NULL
  );
  `,
  /* 3: what an op is about (object digest, link directory), so reconcile can finish it */ `
  ALTER TABLE ops ADD COLUMN detail TEXT;
  CREATE INDEX ops_state ON ops (state);
  `,
  /* 4: per-host breaker and cool-down state, honoured by the next run */ `
  CREATE TABLE hosts (
    host TEXT PRIMARY KEY,
    breaker_state TEXT NOT NULL,
    open_until INTEGER NOT NULL DEFAULT 0,
    cooldown_until INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at INTEGER NOT NULL
  );
  `,
  /* 5: per-download metrics on each attempt */ `
  ALTER TABLE attempts ADD COLUMN sha256 TEXT;
  ALTER TABLE attempts ADD COLUMN path TEXT;
  ALTER TABLE attempts ADD COLUMN fsync_ms REAL;
  ALTER TABLE attempts ADD COLUMN dedup TEXT;
  ALTER TABLE attempts ADD COLUMN throughput_bps INTEGER;
  `,
  /* 6: failures across runs: the failure's message, when a later run may ask again (NULL: only
     with --retry-failed), how many runs in a row failed it; invalid manifest lines */ `
  ALTER TABLE jobs ADD COLUMN message TEXT;
  ALTER TABLE jobs ADD COLUMN next_attempt_at INTEGER;
  ALTER TABLE jobs ADD COLUMN failed_runs INTEGER NOT NULL DEFAULT 0;
  UPDATE jobs SET next_attempt_at = 0 WHERE state = 'failed';
  CREATE TABLE invalid_lines (
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    run_id TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (source, message)
  );
  `,
  /* 7: which resolver supplied a job's URL, and the landing page it was read from (SPEC §9);
     metadata answers kept for the HTTP cache (RFC 9111, see ledger/sqlite/http-cache.ts) */ `
  ALTER TABLE jobs ADD COLUMN resolver TEXT;
  ALTER TABLE jobs ADD COLUMN landing_url TEXT;
  CREATE TABLE http_cache (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    method TEXT NOT NULL,
    body BLOB,
    delete_at INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    headers TEXT,
    etag TEXT,
    cache_control TEXT,
    vary TEXT,
    cached_at INTEGER NOT NULL,
    stale_at INTEGER NOT NULL
  );
  CREATE INDEX http_cache_url ON http_cache (url, method);
  `,
  /* 8: each paced host's next free request slot, shared by every process on the ledger */ `
  CREATE TABLE host_pace (
    host TEXT PRIMARY KEY,
    next_at REAL NOT NULL
  );
  `,
  /* 9: tasks in flight to a host, by process, so every process on the ledger keeps the host's
     max_concurrent together; each expires with its holder's leases. Only what is in flight is
     here, a few rows: no index beyond the key. */ `
  CREATE TABLE host_permits (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  );
  `,
];

/**
 * The PostgreSQL ledger's schema migrations, applied in order inside one transaction each under an
 * advisory lock (several processes may start on a new database at once); `docstokg_schema` holds
 * the number applied. The tables and columns are the SQLite ledger's (ledger/migrations.ts), so
 * every query reads the same rows. Never edit a shipped migration: add the next one.
 */
export const PG_MIGRATIONS: readonly string[] = [
  /* 1: the SQLite ledger's schema as of its migration 8 */ `
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
    bytes BIGINT,
    path TEXT,
    content_type TEXT,
    etag TEXT,
    last_modified TEXT,
    resumed_from BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    elapsed_ms BIGINT,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    seen_run TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    message TEXT,
    next_attempt_at BIGINT,
    failed_runs INTEGER NOT NULL DEFAULT 0,
    resolver TEXT,
    landing_url TEXT
  );
  CREATE INDEX jobs_state ON jobs (state);
  CREATE INDEX jobs_sha256 ON jobs (sha256);
  CREATE INDEX jobs_lease_owner ON jobs (lease_owner) WHERE state = 'active';
  CREATE TABLE ops (
    key TEXT PRIMARY KEY,
    job_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('started', 'done')),
    result TEXT,
    owner TEXT,
    detail TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );
  CREATE INDEX ops_job ON ops (job_key);
  CREATE INDEX ops_state ON ops (state);
  CREATE TABLE attempts (
    id BIGSERIAL PRIMARY KEY,
    job_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    url TEXT NOT NULL,
    final_url TEXT,
    http_status INTEGER,
    bytes BIGINT NOT NULL DEFAULT 0,
    elapsed_ms BIGINT NOT NULL,
    error TEXT,
    resume_from BIGINT,
    resume_decision TEXT,
    started_at BIGINT NOT NULL,
    sha256 TEXT,
    path TEXT,
    fsync_ms DOUBLE PRECISION,
    dedup TEXT,
    throughput_bps BIGINT
  );
  CREATE INDEX attempts_job ON attempts (job_key);
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    argv TEXT NOT NULL,
    counts TEXT,
    exit_code INTEGER
  );
  CREATE TABLE parts (
    job_key TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    total BIGINT,
    started_at BIGINT NOT NULL
  );
  CREATE TABLE hosts (
    host TEXT PRIMARY KEY,
    breaker_state TEXT NOT NULL,
    open_until BIGINT NOT NULL DEFAULT 0,
    cooldown_until BIGINT NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at BIGINT NOT NULL
  );
  CREATE TABLE invalid_lines (
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    run_id TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (source, message)
  );
  CREATE TABLE http_cache (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL,
    method TEXT NOT NULL,
    body BYTEA,
    delete_at BIGINT NOT NULL,
    status_code INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    headers TEXT,
    etag TEXT,
    cache_control TEXT,
    vary TEXT,
    cached_at BIGINT NOT NULL,
    stale_at BIGINT NOT NULL
  );
  CREATE INDEX http_cache_url ON http_cache (url, method);
  CREATE TABLE host_pace (
    host TEXT PRIMARY KEY,
    next_at DOUBLE PRECISION NOT NULL
  );
  `,
  /* 2: the SQLite ledger's migration 9 (host_permits), and the atomic take of one: the host's
     advisory lock orders takers, so two processes never both see the last free permit */ `
  CREATE TABLE host_permits (
    id BIGSERIAL PRIMARY KEY,
    host TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  CREATE FUNCTION docstokg_take_permit(p_host TEXT, p_owner TEXT, p_expires BIGINT, p_now BIGINT, p_cap BIGINT) RETURNS BIGINT AS $$
  DECLARE
    taken BIGINT;
  BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('docstokg permit ' || p_host));
    IF (SELECT COUNT(*) FROM host_permits WHERE host = p_host AND expires_at >= p_now) >= p_cap THEN
      RETURN NULL;
    END IF;
    INSERT INTO host_permits (host, owner, expires_at) VALUES (p_host, p_owner, p_expires) RETURNING id INTO taken;
    RETURN taken;
  END
  $$ LANGUAGE plpgsql;
  `,
  /* 3: the order jobs were planned in, for the read-ahead of a re-run (SQLite has its rowid) */ `
  ALTER TABLE jobs ADD COLUMN seq BIGSERIAL;
  CREATE UNIQUE INDEX jobs_seq ON jobs (seq);
  `,
];

/**
 * A job row's columns, as JobRow has them: every query that returns rows names them, so columns
 * the SQLite ledger does not have (such as `seq`) stay out of rows. A migration that adds a job
 * column adds it here (the ledger contract test compares this list with the table).
 */
export const JOB_COLUMNS = 'key, item_id, doi, canonical_url, urls, expected_sha256, source, state, status, reason, http_status, url, final_url, sha256, bytes, path, content_type, etag, last_modified, resumed_from, attempts, elapsed_ms, lease_owner, lease_expires_at, seen_run, created_at, updated_at, message, next_attempt_at, failed_runs, resolver, landing_url';

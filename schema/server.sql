-- server.sql - the sync server's own tables, never sent to tablets.
-- Applied after schema.sql on a new server database.  Row-version triggers
-- on the synced tables are generated from sync_tables by the server at open.

-- Enrolled tablets.  A hall device's township is its hall's township; a
-- township device has hall_id = x''.
CREATE TABLE devices (
    id              BLOB NOT NULL PRIMARY KEY,
    role            TEXT NOT NULL,
    township_id     BLOB NOT NULL,
    hall_id         BLOB NOT NULL DEFAULT x'',
    kx_pk           BLOB NOT NULL,
    sign_pk         BLOB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'revoked')),
    enrolled_at     INTEGER NOT NULL,
    last_seen       INTEGER,
    last_sync       INTEGER,
    last_batch_seq  INTEGER NOT NULL DEFAULT 0,
    app_version     TEXT,
    schema_version  INTEGER,
    clock_skew_ms   INTEGER,
    clamped_hlcs    INTEGER NOT NULL DEFAULT 0
);

-- One-time enrollment codes; only a hash of the code is kept.
CREATE TABLE enroll_codes (
    code_hash    BLOB NOT NULL PRIMARY KEY,
    role         TEXT NOT NULL,
    township_id  BLOB NOT NULL,
    hall_id      BLOB NOT NULL DEFAULT x'',
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    device_id    BLOB
);

-- Every accepted batch, kept for audit and for exactly-once replies.
-- vseq: the version counter right after the batch committed; a pull whose
-- cursor has passed it has delivered the batch's effects.
CREATE TABLE batches (
    device_id     BLOB NOT NULL,
    batch_seq     INTEGER NOT NULL,
    content_hash  BLOB NOT NULL,
    received_at   INTEGER NOT NULL,
    vseq          INTEGER NOT NULL,
    nchanges      INTEGER NOT NULL,
    ack           TEXT NOT NULL,
    raw           BLOB NOT NULL,
    signature     BLOB NOT NULL,        -- Ed25519 by the device, see PROTOCOL.md
    PRIMARY KEY (device_id, batch_seq)
) WITHOUT ROWID;
CREATE INDEX batches_vseq ON batches (device_id, vseq);

-- The version of every synced row in every scope it has been in.  A row
-- that leaves a scope keeps its old entry with deleted = 1, so tablets of
-- that scope receive a tombstone.
CREATE TABLE row_versions (
    tbl          TEXT NOT NULL,
    pk           BLOB NOT NULL,
    township_id  BLOB NOT NULL,
    hall_id      BLOB NOT NULL,
    vseq         INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    PRIMARY KEY (tbl, pk, township_id, hall_id)
) WITHOUT ROWID;
-- A pull reads it by (township, hall) partition in vseq order: its index
-- and the partition list (row_partitions) are created by sync-server/store.c
-- (pull_sql), on every open, so databases made before them get them too.

CREATE TABLE sync_counter (
    id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    v   INTEGER NOT NULL
);
INSERT INTO sync_counter (id, v) VALUES (1, 0);

-- Conflicts found while merging: nothing is dropped silently.  winner and
-- loser are JSON objects of the disputed columns.
CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    device_id    BLOB,
    batch_seq    INTEGER,
    tbl          TEXT NOT NULL,
    pk           BLOB NOT NULL,
    township_id  BLOB,
    -- duplicate_claim | lww | state_regression | insert_exists |
    -- not_found | constraint
    kind         TEXT NOT NULL,
    winner       TEXT,
    loser        TEXT,
    status       TEXT NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'resolved')),
    resolved_at  INTEGER,
    resolved_by  TEXT,                    -- the dashboard user
    resolution   TEXT                     -- JSON: the action and the columns set
);
CREATE INDEX conflicts_open ON conflicts (status, township_id);

-- Refused pushes: what was refused, why, and from which device.
CREATE TABLE rejections (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    device_id   BLOB,
    batch_seq   INTEGER,
    http_status INTEGER NOT NULL,
    error       TEXT NOT NULL,
    detail      TEXT,
    entry_id    INTEGER,
    raw         BLOB
);

-- Data keys for personal columns, newest = active.  Each is wrapped
-- (nonce || secretbox) by the master key in the server's key file; tablets
-- receive them sealed to their device key.  Key id 0 is the blind-index key
-- and lives only in the key file.
CREATE TABLE keyring (
    key_id      INTEGER NOT NULL PRIMARY KEY CHECK (key_id > 0),
    wrapped     BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Append-only, hash-chained record of what happened: accepted batches (with
-- the changeset hash and the device's signature), refusals, enrollments,
-- revocations and admin actions.  hash = BLAKE2b-256 over the previous
-- hash and this entry's fields (audit.c); `sync-server audit-verify`
-- walks the chain.  detail is JSON without personal data.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    device_id  BLOB,
    actor      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);

-- Dashboard accounts (docs/DASHBOARD.md).  pw_hash: crypto_pwhash_str.
-- township_id: the township of a township_supervisor, else NULL.
CREATE TABLE dash_users (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN
                     ('county_admin', 'county_supervisor', 'township_supervisor')),
    township_id  BLOB,
    pw_hash      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    CHECK ((role = 'township_supervisor') = (township_id IS NOT NULL))
);

-- Live dashboard sessions; only a BLAKE2b hash of the cookie is kept.
CREATE TABLE dash_sessions (
    token_hash  BLOB NOT NULL PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES dash_users (id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
) WITHOUT ROWID;

-- The dashboard leaves voided meals out of every count.
CREATE INDEX meal_logs_void ON meal_logs (void_of) WHERE void_of IS NOT NULL;

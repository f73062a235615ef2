-- tablet.sql - the SDK's own tables on a tablet, never synced.
-- Applied after schema.sql on a new tablet database.

-- Device identity and sync state: device_id, role, township_id, hall_id,
-- server_url, server_kx_pk, kx_pk, kx_sk, sign_pk, sign_sk, cursor,
-- next_batch_seq, acked_seq, hlc, last_sync.
CREATE TABLE sync_meta (
    key    TEXT NOT NULL PRIMARY KEY,
    value
) WITHOUT ROWID;

-- One row per committed local write transaction.
--   changeset  what the session recorded (applied locally; undone and
--              replayed at every pull)
--   forward    changes that could not be replayed locally (their row left
--              this tablet's scope, or they conflict): pushed as they are,
--              never applied or undone here
--   batch_seq  set once the entry is put into a batch
--   state      pending | quarantined (refused by the server, kept for review)
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    changeset   BLOB,
    forward     BLOB,
    batch_seq   INTEGER,
    state       TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'quarantined')),
    undone      INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    detail      TEXT
);
CREATE INDEX outbox_batch ON outbox (state, batch_seq);

-- The batch being sent: its exact bytes are resent on retry, so a batch_seq
-- always names the same content.
CREATE TABLE pending_batch (
    batch_seq  INTEGER NOT NULL PRIMARY KEY,
    payload    BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- The county's data keys (id 0: the blind-index key), each sealed to this
-- device's X25519 key by the server (crypto_box_seal).  Opening one needs
-- the device's secret key, which the caregiver's PIN protects.
CREATE TABLE data_keys (
    key_id  INTEGER NOT NULL PRIMARY KEY,
    sealed  BLOB NOT NULL
);

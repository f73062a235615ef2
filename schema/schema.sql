-- schema.sql - the county's domain, shared by the sync server and every tablet.
--
-- Both sides apply this file to a new database, then every file in
-- migrations/ whose number is above PRAGMA user_version, in order.  The
-- build embeds these files into the server and the SDK; nothing here is
-- copied into C by hand.
--
-- Conventions
--   * Every synced table has a NOT NULL primary key `id`: a 16-byte UUIDv7
--     blob (time-ordered, made offline by the tablet; SQL function uuid7()).
--   * Mutable tables carry `hlc` (hybrid logical clock, stamped by the SDK at
--     commit) and `deleted` (soft delete; rows are never removed).
--   * Instants are INTEGER milliseconds since the Unix epoch, UTC.  The
--     county's local calendar day (Asia/Shanghai unless configured) is stored
--     explicitly as TEXT 'YYYY-MM-DD' in `service_date`.
--   * Money is INTEGER fen (1 yuan = 100 fen).  No floating point anywhere.
--   * No triggers on synced tables: they would fire while the SDK applies
--     pulled changesets.  (The server adds its own bookkeeping triggers.)

PRAGMA user_version = 1;

-- ---------------------------------------------------------------------------
-- Sync declarations: one row per synced table.  Read by the server (to
-- authorise, merge and scope) and by the SDK (to stamp clocks, replay and
-- describe).  Role lists are space-separated.
--   policy       append: immutable after insert (corrections are new rows)
--                lww:    column-wise merge, same column -> newer hlc wins
--                state:  like lww, but `state_column` only moves forward
--                        (ranks in sync_states)
--   scope        county | township | hall: which devices see and may write
--                a row.  The scope key sits in `scope_column`.  A hall
--                device also sees its hall's township; a township device
--                also sees the halls in its township.
--   personal     columns holding personal data, sealed at rest on both
--                sides (client-sdk/src/pcrypt.h): the SDK seals on write and
--                opens on read, the server stores them sealed
--   blind        personal columns that also keep a blind index (keyed
--                BLAKE2b of the normalised value) in <column>_bidx, so the
--                server can find the same ID-card number registered twice
--   protected    columns only the county may set: a tablet must insert NULL
--                and may never change them
-- ---------------------------------------------------------------------------
CREATE TABLE sync_tables (
    name          TEXT NOT NULL PRIMARY KEY,
    policy        TEXT NOT NULL CHECK (policy IN ('append', 'lww', 'state')),
    scope         TEXT NOT NULL CHECK (scope IN ('county', 'township', 'hall')),
    scope_column  TEXT NOT NULL,
    read_roles    TEXT NOT NULL DEFAULT '',
    insert_roles  TEXT NOT NULL DEFAULT '',
    update_roles  TEXT NOT NULL DEFAULT '',
    delete_roles  TEXT NOT NULL DEFAULT '',
    personal      TEXT NOT NULL DEFAULT '',
    protected     TEXT NOT NULL DEFAULT '',
    state_column  TEXT,
    blind         TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- Legal values of a state column, their order, and who may set each one.
CREATE TABLE sync_states (
    tbl    TEXT NOT NULL,
    col    TEXT NOT NULL,
    value  TEXT NOT NULL,
    rank   INTEGER NOT NULL,
    roles  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tbl, col, value)
) WITHOUT ROWID;

INSERT INTO sync_tables (name, policy, scope, scope_column, read_roles,
                         insert_roles, update_roles, delete_roles,
                         personal, protected, state_column) VALUES
 ('townships',      'lww',    'township', 'id',
    'caregiver hall inspector', '', '', '', '', 'code', NULL),
 ('villages',       'lww',    'township', 'township_id',
    'caregiver hall inspector', '', '', '', '', 'code', NULL),
 ('dining_halls',   'lww',    'hall',     'id',
    'caregiver hall inspector', '', '', '', '', '', NULL),
 ('campaigns',      'lww',    'county',   'id',
    'caregiver inspector', '', '', '', '', '', NULL),
 ('seniors',        'lww',    'township', 'township_id',
    'caregiver hall inspector', 'caregiver', 'caregiver', '',
    'name id_card phone address poverty_status health_notes',
    'subsidy_level poverty_status', NULL),
 ('meal_logs',      'append', 'hall',     'hall_id',
    'hall', 'hall', '', '', '', '', NULL),
 ('retrofit_cases', 'state',  'township', 'township_id',
    'inspector', 'inspector', 'inspector', '',
    '', 'approved_amount_fen', 'status'),
 ('retrofit_items', 'lww',    'township', 'township_id',
    'inspector', 'inspector', 'inspector', '', '', '', NULL),
 ('visits',         'lww',    'township', 'township_id',
    'caregiver', 'caregiver', 'caregiver', '', 'visitor location notes', '', NULL),
 ('visit_handouts', 'append', 'township', 'township_id',
    'caregiver', 'caregiver', '', '', '', '', NULL);

UPDATE sync_tables SET blind = 'id_card' WHERE name = 'seniors';

-- The retrofit workflow.  Approval and payment are the county's decisions.
INSERT INTO sync_states (tbl, col, value, rank, roles) VALUES
 ('retrofit_cases', 'status', 'applied',   1, 'inspector'),
 ('retrofit_cases', 'status', 'assessed',  2, 'inspector'),
 ('retrofit_cases', 'status', 'approved',  3, ''),
 ('retrofit_cases', 'status', 'works',     4, 'inspector'),
 ('retrofit_cases', 'status', 'accepted',  5, 'inspector'),
 ('retrofit_cases', 'status', 'paid',      6, '');

-- ---------------------------------------------------------------------------
-- Reference data (the county manages it; tablets only read)
-- ---------------------------------------------------------------------------
CREATE TABLE townships (
    id       BLOB NOT NULL PRIMARY KEY,
    code     TEXT,                          -- county administrative code
    name     TEXT NOT NULL,
    hlc      INTEGER NOT NULL DEFAULT 0,
    deleted  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE villages (
    id           BLOB NOT NULL PRIMARY KEY,
    township_id  BLOB NOT NULL REFERENCES townships (id),
    code         TEXT,
    name         TEXT NOT NULL,
    hlc          INTEGER NOT NULL DEFAULT 0,
    deleted      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE dining_halls (
    id               BLOB NOT NULL PRIMARY KEY,
    township_id      BLOB NOT NULL REFERENCES townships (id),
    name             TEXT NOT NULL,
    meal_price_fen   INTEGER NOT NULL CHECK (meal_price_fen >= 0),
    delivers         INTEGER NOT NULL DEFAULT 0 CHECK (delivers IN (0, 1)),
    hlc              INTEGER NOT NULL DEFAULT 0,
    deleted          INTEGER NOT NULL DEFAULT 0
);

-- A visit campaign, e.g. the Double Ninth (重阳) seniors' month.
CREATE TABLE campaigns (
    id          BLOB NOT NULL PRIMARY KEY,
    name        TEXT NOT NULL,
    start_date  TEXT NOT NULL,              -- local dates, inclusive
    end_date    TEXT NOT NULL,
    -- who must be visited: space-separated categories of seniors.category
    must_visit  TEXT NOT NULL DEFAULT '',
    cash_fen    INTEGER NOT NULL DEFAULT 0 CHECK (cash_fen >= 0),
    hlc         INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0
);

-- ---------------------------------------------------------------------------
-- Seniors
-- ---------------------------------------------------------------------------
CREATE TABLE seniors (
    id              BLOB NOT NULL PRIMARY KEY,
    township_id     BLOB NOT NULL REFERENCES townships (id),
    village_id      BLOB REFERENCES villages (id),
    name            TEXT NOT NULL,          -- personal
    id_card         TEXT,                   -- personal: 18-character resident ID
    id_card_bidx    BLOB,                   -- its blind index (see sync_tables.blind)
    phone           TEXT,                   -- personal
    address         TEXT,                   -- personal
    gender          TEXT CHECK (gender IN ('F', 'M')),
    birth_year      INTEGER,
    -- centenarian | advanced_age | concentrated_care | ordinary
    category        TEXT NOT NULL DEFAULT 'ordinary',
    poverty_status  TEXT,                   -- personal, certified by the county
    health_notes    TEXT,                   -- personal
    subsidy_level   INTEGER,                -- meal subsidy tier, set by the county
    hlc             INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX seniors_township ON seniors (township_id);
CREATE INDEX seniors_id_card_bidx ON seniors (id_card_bidx);

-- ---------------------------------------------------------------------------
-- Dining halls: one row per meal served.  Append-only; a mistaken entry is
-- cancelled by a new row with void_of = the mistaken row's id.
-- ---------------------------------------------------------------------------
CREATE TABLE meal_logs (
    id              BLOB NOT NULL PRIMARY KEY,
    senior_id       BLOB NOT NULL REFERENCES seniors (id),
    hall_id         BLOB NOT NULL REFERENCES dining_halls (id),
    service_date    TEXT NOT NULL CHECK (service_date GLOB
                        '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'),
    meal_period     TEXT NOT NULL CHECK (meal_period IN
                        ('breakfast', 'lunch', 'dinner')),
    mode            TEXT NOT NULL CHECK (mode IN ('dine_in', 'delivery')),
    served_at       INTEGER NOT NULL,       -- UTC ms
    price_paid_fen  INTEGER NOT NULL CHECK (price_paid_fen >= 0),
    subsidy_fen     INTEGER NOT NULL DEFAULT 0 CHECK (subsidy_fen >= 0),
    void_of         BLOB REFERENCES meal_logs (id)   -- the meal this entry cancels
);
-- One subsidised meal per senior per meal period per day.
CREATE UNIQUE INDEX meal_logs_one_subsidy
    ON meal_logs (senior_id, service_date, meal_period)
    WHERE subsidy_fen > 0 AND void_of IS NULL;
CREATE INDEX meal_logs_hall_date ON meal_logs (hall_id, service_date);

-- ---------------------------------------------------------------------------
-- Age-friendly home retrofits
-- ---------------------------------------------------------------------------
CREATE TABLE retrofit_cases (
    id                   BLOB NOT NULL PRIMARY KEY,
    township_id          BLOB NOT NULL REFERENCES townships (id),
    senior_id            BLOB NOT NULL REFERENCES seniors (id),
    status               TEXT NOT NULL DEFAULT 'applied',
    target_year          INTEGER NOT NULL,
    applied_date         TEXT,
    assessed_date        TEXT,
    accepted_date        TEXT,
    estimated_cost_fen   INTEGER NOT NULL DEFAULT 0 CHECK (estimated_cost_fen >= 0),
    approved_amount_fen  INTEGER CHECK (approved_amount_fen >= 0),
    final_cost_fen       INTEGER CHECK (final_cost_fen >= 0),
    notes                TEXT,
    hlc                  INTEGER NOT NULL DEFAULT 0,
    deleted              INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX retrofit_cases_township ON retrofit_cases (township_id, status);

CREATE TABLE retrofit_items (
    id            BLOB NOT NULL PRIMARY KEY,
    case_id       BLOB NOT NULL REFERENCES retrofit_cases (id),
    township_id   BLOB NOT NULL REFERENCES townships (id),
    -- grab_bar | non_slip_floor | door_widening | lighting | alarm |
    -- toilet_seat | other
    item_kind     TEXT NOT NULL,
    description   TEXT,
    cost_fen      INTEGER NOT NULL DEFAULT 0 CHECK (cost_fen >= 0),
    done          INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    accepted      INTEGER NOT NULL DEFAULT 0 CHECK (accepted IN (0, 1)),
    photo_before  TEXT,                     -- content hash of the photo
    photo_after   TEXT,
    hlc           INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX retrofit_items_case ON retrofit_items (case_id);

-- ---------------------------------------------------------------------------
-- Visits: welfare visits and home services.  `kind` is open-ended
-- (welfare | cleaning | bathing | ...), so new services need no redesign.
-- ---------------------------------------------------------------------------
CREATE TABLE visits (
    id            BLOB NOT NULL PRIMARY KEY,
    township_id   BLOB NOT NULL REFERENCES townships (id),
    senior_id     BLOB NOT NULL REFERENCES seniors (id),
    campaign_id   BLOB REFERENCES campaigns (id),
    kind          TEXT NOT NULL,
    visitor       TEXT NOT NULL,            -- personal: the staff member who visited
    visited_at    INTEGER NOT NULL,         -- UTC ms
    service_date  TEXT NOT NULL,
    location      TEXT,                     -- personal
    notes         TEXT,                     -- personal
    hlc           INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX visits_senior ON visits (senior_id);

-- Cash and goods handed over during a visit.  Append-only.
CREATE TABLE visit_handouts (
    id               BLOB NOT NULL PRIMARY KEY,
    visit_id         BLOB NOT NULL REFERENCES visits (id),
    township_id      BLOB NOT NULL REFERENCES townships (id),
    senior_id        BLOB NOT NULL REFERENCES seniors (id),
    campaign_id      BLOB REFERENCES campaigns (id),
    kind             TEXT NOT NULL CHECK (kind IN ('cash', 'goods')),
    amount_fen       INTEGER NOT NULL DEFAULT 0 CHECK (amount_fen >= 0),
    goods            TEXT,
    goods_value_fen  INTEGER NOT NULL DEFAULT 0 CHECK (goods_value_fen >= 0)
);
-- Cash is handed over once per senior per campaign.
CREATE UNIQUE INDEX visit_handouts_one_cash
    ON visit_handouts (senior_id, campaign_id)
    WHERE kind = 'cash' AND campaign_id IS NOT NULL;

-- cdclab: an opt-in domain whose tables hold what CDC pipelines break on
-- (docs/cdc.md, "Edge cases"). Not spec 002's business schema, and left out
-- of --domain all: install it with --domain cdclab.
--   * lab_documents / lab_documents_full: large text and jsonb stored out of
--     line (STORAGE EXTERNAL, > 8 kB), REPLICA IDENTITY DEFAULT and FULL;
--   * lab_types: the types connectors convert (numeric(38,10), timestamptz,
--     timestamp, date, time, interval, uuid, jsonb, text[], bytea, an enum,
--     a domain) and NULLs;
--   * lab_accounts -> lab_entries: a primary key that changes, cascading to
--     the children (ON UPDATE CASCADE);
--   * lab_slots: a composite primary key;
--   * lab_log: no primary key at all (REPLICA IDENTITY FULL);
--   * lab_evolving: columns added and dropped mid-stream;
--   * lab_bulk: large transactions and TRUNCATE.
-- Timestamps without time zone hold UTC, as in the other domains.

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END; $$ LANGUAGE plpgsql;

DO $$
BEGIN
  IF to_regtype('lab_mood') IS NULL THEN
    CREATE TYPE lab_mood AS ENUM ('calm', 'busy', 'degraded', 'down');
  END IF;
  IF to_regtype('lab_code') IS NULL THEN
    CREATE DOMAIN lab_code AS VARCHAR(8) CHECK (VALUE ~ '^[A-Z]{3}-[0-9]{4}$');
  END IF;
END $$;

CREATE TABLE IF NOT EXISTS lab_documents (
  id         BIGSERIAL PRIMARY KEY,
  title      VARCHAR(200) NOT NULL,
  revision   INTEGER NOT NULL DEFAULT 1,
  body       TEXT NOT NULL,
  attrs      JSONB NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
-- EXTERNAL: out of line without compression, so every value over ~2 kB is
-- a TOAST pointer and an UPDATE that leaves it alone does not log it.
ALTER TABLE lab_documents ALTER COLUMN body SET STORAGE EXTERNAL,
  ALTER COLUMN attrs SET STORAGE EXTERNAL;
CREATE OR REPLACE TRIGGER lab_documents_updated_at
BEFORE UPDATE ON lab_documents
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS lab_documents_full (
  id         BIGSERIAL PRIMARY KEY,
  title      VARCHAR(200) NOT NULL,
  revision   INTEGER NOT NULL DEFAULT 1,
  body       TEXT NOT NULL,
  attrs      JSONB NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
ALTER TABLE lab_documents_full ALTER COLUMN body SET STORAGE EXTERNAL,
  ALTER COLUMN attrs SET STORAGE EXTERNAL, REPLICA IDENTITY FULL;
CREATE OR REPLACE TRIGGER lab_documents_full_updated_at
BEFORE UPDATE ON lab_documents_full
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS lab_types (
  id          BIGSERIAL PRIMARY KEY,
  amount      NUMERIC(38,10),
  happened_at TIMESTAMPTZ,
  local_at    TIMESTAMP,
  on_day      DATE,
  at_time     TIME,
  span        INTERVAL,
  ref         UUID,
  doc         JSONB,
  tags        TEXT[],
  blob        BYTEA,
  mood        lab_mood,
  code        lab_code,
  note        TEXT,
  created_at  TIMESTAMP NOT NULL DEFAULT now(),
  updated_at  TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER lab_types_updated_at
BEFORE UPDATE ON lab_types
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS lab_accounts (
  id         BIGSERIAL PRIMARY KEY,
  holder      VARCHAR(150) NOT NULL,
  balance     NUMERIC(14,2) NOT NULL DEFAULT 0,
  rekey_token BIGINT, -- set by each key change: which change moved the row
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER lab_accounts_updated_at
BEFORE UPDATE ON lab_accounts
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS lab_entries (
  id         BIGSERIAL PRIMARY KEY,
  account_id BIGINT NOT NULL REFERENCES lab_accounts(id)
             ON UPDATE CASCADE ON DELETE RESTRICT,
  amount     NUMERIC(12,2) NOT NULL,
  memo       VARCHAR(120),
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER lab_entries_updated_at
BEFORE UPDATE ON lab_entries
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS lab_slots (
  shelf      VARCHAR(8) NOT NULL,
  position   INTEGER NOT NULL,
  item       VARCHAR(120) NOT NULL,
  quantity   INTEGER NOT NULL CHECK (quantity >= 0),
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now(),
  PRIMARY KEY (shelf, position)
);
CREATE SEQUENCE IF NOT EXISTS lab_slots_position_seq OWNED BY lab_slots.position;
CREATE OR REPLACE TRIGGER lab_slots_updated_at
BEFORE UPDATE ON lab_slots
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- No primary key: update and delete events carry the whole old row.
CREATE TABLE IF NOT EXISTS lab_log (
  event_id   UUID NOT NULL,
  kind       VARCHAR(20) NOT NULL,
  detail     JSONB,
  logged_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE lab_log REPLICA IDENTITY FULL;

CREATE TABLE IF NOT EXISTS lab_evolving (
  id         BIGSERIAL PRIMARY KEY,
  label      VARCHAR(60) NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER lab_evolving_updated_at
BEFORE UPDATE ON lab_evolving
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS lab_bulk (
  id         BIGSERIAL PRIMARY KEY,
  load_no    INTEGER NOT NULL,
  n          INTEGER NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT now()
);

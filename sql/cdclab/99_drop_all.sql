-- Drops the cdclab domain's objects, and only those: children first, no
-- CASCADE, so a user's object that depends on one of ours stops the reset.
DROP TABLE IF EXISTS lab_bulk;
DROP TABLE IF EXISTS lab_evolving;
DROP TABLE IF EXISTS lab_log;
DROP TABLE IF EXISTS lab_slots;
DROP TABLE IF EXISTS lab_entries;
DROP TABLE IF EXISTS lab_accounts;
DROP TABLE IF EXISTS lab_types;
DROP TABLE IF EXISTS lab_documents_full;
DROP TABLE IF EXISTS lab_documents;
DROP DOMAIN IF EXISTS lab_code;
DROP TYPE IF EXISTS lab_mood;
-- set_updated_at() is shared with the other domains (and may serve a user's
-- trigger): drop it only once no trigger uses it any more.
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE p.proname = 'set_updated_at' AND NOT t.tgisinternal
  ) THEN
    DROP FUNCTION IF EXISTS set_updated_at();
  END IF;
END $$;

-- Drops the retail domain's objects, and only those: children first, no
-- CASCADE, so a user's object that depends on one of ours stops the reset.
DROP TABLE IF EXISTS sale_items;
DROP TABLE IF EXISTS sales;
DROP TABLE IF EXISTS internal_distribution_items;
DROP TABLE IF EXISTS internal_distributions;
DROP TABLE IF EXISTS product_entry_items;
DROP TABLE IF EXISTS product_entries;
DROP TABLE IF EXISTS clients;
DROP TABLE IF EXISTS products;
DROP TABLE IF EXISTS stores;
DROP TABLE IF EXISTS suppliers;
-- Earlier versions kept identifier indices in this table; they are now
-- sequences, which reset drops by their oltpseed mark (indices.py).
DROP TABLE IF EXISTS oltpseed_retail_sequences;
-- set_updated_at() is shared with the hospital domain (and may serve a user's
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

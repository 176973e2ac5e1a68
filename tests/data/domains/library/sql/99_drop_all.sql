-- Drops the library domain's objects, and only those: children first, no
-- CASCADE, so a user's object that depends on one of ours stops the reset.
DROP TABLE IF EXISTS books;
DROP TABLE IF EXISTS authors;
DROP TABLE IF EXISTS oltpseed_library_sequences;
DROP FUNCTION IF EXISTS library_updated_at();

CREATE INDEX IF NOT EXISTS books_author_id_idx ON books (author_id);

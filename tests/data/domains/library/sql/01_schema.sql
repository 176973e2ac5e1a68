-- library: the worked example of docs/domains.md. CDC rules of every domain:
-- BIGSERIAL PK, created_at/updated_at kept by a trigger, FKs ON UPDATE
-- CASCADE ON DELETE RESTRICT. Applying it twice is harmless.
CREATE OR REPLACE FUNCTION library_updated_at() RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END; $$ LANGUAGE plpgsql;

CREATE TABLE IF NOT EXISTS authors (
  id         BIGSERIAL PRIMARY KEY,
  name       VARCHAR(120) NOT NULL,
  city       VARCHAR(80) NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER authors_updated_at BEFORE UPDATE ON authors
FOR EACH ROW EXECUTE FUNCTION library_updated_at();

CREATE TABLE IF NOT EXISTS books (
  id           BIGSERIAL PRIMARY KEY,
  author_id    BIGINT NOT NULL REFERENCES authors (id)
               ON UPDATE CASCADE ON DELETE RESTRICT,
  title        VARCHAR(200) NOT NULL,
  genre        VARCHAR(20) NOT NULL
               CHECK (genre IN ('novel', 'essay', 'poetry', 'children')),
  price        NUMERIC(8, 2) NOT NULL CHECK (price > 0),
  published_on DATE NOT NULL,
  created_at   TIMESTAMP NOT NULL DEFAULT now(),
  updated_at   TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER books_updated_at BEFORE UPDATE ON books
FOR EACH ROW EXECUTE FUNCTION library_updated_at();

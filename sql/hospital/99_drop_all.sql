-- Drops the hospital domain's objects, and only those.
-- Change from the spec: its version dropped every table in the schema, a user's
-- own tables included. Tables are dropped children first and without CASCADE,
-- so an object of the user's that depends on one of ours stops the reset (and
-- its transaction) instead of being silently altered.
DROP TABLE IF EXISTS pacientes_convenios;
DROP TABLE IF EXISTS consultas;
DROP TABLE IF EXISTS exames;
DROP TABLE IF EXISTS internacoes;
DROP TABLE IF EXISTS convenios;
DROP TABLE IF EXISTS medicos;
DROP TABLE IF EXISTS pacientes;
-- Earlier versions kept identifier indices in this table; they are now
-- sequences, which reset drops by their oltpseed mark (indices.py).
DROP TABLE IF EXISTS oltpseed_hospital_sequences;
-- set_updated_at() is shared with the retail domain (and may serve a user's
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

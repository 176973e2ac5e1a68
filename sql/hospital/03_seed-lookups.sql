-- Convênios-base (spec 002), ampliados pelo seeder.
-- Change from the spec: the CNPJs carry valid check digits (the spec's
-- '00.000.000/0001-00' and '11.111.111/0001-11' fail the CNPJ algorithm, and
-- every CNPJ in this database must pass `oltpseed check`).
INSERT INTO convenios (nome, cnpj, tipo, cobertura)
VALUES
  ('SUS', '00.000.000/0001-91', 'publico', 'integral'),
  ('SaudePlus', '11.111.111/0001-91', 'privado', 'ambulatorial e hospitalar')
ON CONFLICT DO NOTHING;

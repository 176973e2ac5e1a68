-- Índices úteis para consultas e CDC (chaves naturais e FK targets): spec 002.
-- Changes from the spec:
--   * idx_pacientes_cpf and idx_medicos_crm are gone: the UNIQUE constraints on
--     pacientes.cpf and medicos.crm already own an identical index, so the spec's
--     copies only doubled the write cost. They are dropped here if an earlier
--     install created them.
--   * idx_pacientes_convenios_convenio is added: convenio_id is an FK with no
--     index (paciente_id is covered by the UNIQUE (paciente_id, convenio_id)).
DROP INDEX IF EXISTS idx_pacientes_cpf;
DROP INDEX IF EXISTS idx_medicos_crm;
CREATE INDEX IF NOT EXISTS idx_pacientes_convenios_convenio
  ON pacientes_convenios (convenio_id);
CREATE INDEX IF NOT EXISTS idx_consultas_paciente ON consultas (paciente_id);
CREATE INDEX IF NOT EXISTS idx_consultas_medico ON consultas (medico_id);
CREATE INDEX IF NOT EXISTS idx_consultas_data ON consultas (data);
CREATE INDEX IF NOT EXISTS idx_exames_paciente ON exames (paciente_id);
CREATE INDEX IF NOT EXISTS idx_exames_data ON exames (data);
CREATE INDEX IF NOT EXISTS idx_internacoes_paciente ON internacoes (paciente_id);
CREATE INDEX IF NOT EXISTS idx_internacoes_datas
  ON internacoes (data_entrada, data_saida);

-- oltpseed's identifier reservations (CPF, CNPJ, CRM, ... are numbered by
-- an index per key): sequences, which logical decoding never emits. Made
-- here so that a role with DML rights only can seed and stream; see
-- pytest_oltpseed/indices.py.
CREATE SEQUENCE IF NOT EXISTS oltpseed_hospital_idx_medicos__crm AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_hospital_idx_medicos__crm IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';
CREATE SEQUENCE IF NOT EXISTS oltpseed_hospital_idx_convenios__cnpj AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_hospital_idx_convenios__cnpj IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';
CREATE SEQUENCE IF NOT EXISTS oltpseed_hospital_idx_pacientes__cpf AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_hospital_idx_pacientes__cpf IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';

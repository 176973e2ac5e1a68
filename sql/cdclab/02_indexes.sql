-- cdclab indexes: the FK of the cascading child, the lookups of lab_log.
CREATE INDEX IF NOT EXISTS idx_lab_entries_account ON lab_entries (account_id);
CREATE INDEX IF NOT EXISTS idx_lab_log_event ON lab_log (event_id);

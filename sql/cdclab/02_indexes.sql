-- cdclab indexes: the FK of the cascading child; the newest rows of lab_slots
-- and lab_log (update and delete events pick among them).
CREATE INDEX IF NOT EXISTS idx_lab_entries_account ON lab_entries (account_id);
CREATE INDEX IF NOT EXISTS idx_lab_log_recent ON lab_log (logged_at, event_id);
CREATE INDEX IF NOT EXISTS idx_lab_slots_position ON lab_slots (position);

-- An index on every FK column not already led by a UNIQUE constraint
-- (entry_id, distribution_id and sale_id lead theirs), plus the time columns
-- that range queries and CDC consumers filter on.
CREATE INDEX IF NOT EXISTS idx_product_entries_supplier
  ON product_entries (supplier_id);
CREATE INDEX IF NOT EXISTS idx_product_entries_date ON product_entries (entry_date);
CREATE INDEX IF NOT EXISTS idx_product_entry_items_product
  ON product_entry_items (product_id);
CREATE INDEX IF NOT EXISTS idx_internal_distributions_store
  ON internal_distributions (store_id);
CREATE INDEX IF NOT EXISTS idx_internal_distribution_items_product
  ON internal_distribution_items (product_id);
CREATE INDEX IF NOT EXISTS idx_sales_store ON sales (store_id);
CREATE INDEX IF NOT EXISTS idx_sales_client ON sales (client_id);
CREATE INDEX IF NOT EXISTS idx_sales_sold_at ON sales (sold_at);
CREATE INDEX IF NOT EXISTS idx_sale_items_product ON sale_items (product_id);

-- oltpseed's identifier reservations (CPF, CNPJ, CRM, ... are numbered by
-- an index per key): sequences, which logical decoding never emits. Made
-- here so that a role with DML rights only can seed and stream; see
-- pytest_oltpseed/indices.py.
CREATE SEQUENCE IF NOT EXISTS oltpseed_retail_idx_suppliers__cnpj AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_retail_idx_suppliers__cnpj IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';
CREATE SEQUENCE IF NOT EXISTS oltpseed_retail_idx_stores__code AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_retail_idx_stores__code IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';
CREATE SEQUENCE IF NOT EXISTS oltpseed_retail_idx_products__name AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_retail_idx_products__name IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';
CREATE SEQUENCE IF NOT EXISTS oltpseed_retail_idx_clients__cnpj AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_retail_idx_clients__cnpj IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';
CREATE SEQUENCE IF NOT EXISTS oltpseed_retail_idx_clients__cpf AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_retail_idx_clients__cpf IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';
CREATE SEQUENCE IF NOT EXISTS oltpseed_retail_idx_product_entries__invoice AS bigint MINVALUE 0 START 0;
COMMENT ON SEQUENCE oltpseed_retail_idx_product_entries__invoice IS 'oltpseed: identifier index reservations (bookkeeping, not business data)';

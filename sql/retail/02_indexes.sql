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

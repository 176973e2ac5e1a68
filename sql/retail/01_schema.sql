-- Retail OLTP schema (spec 000's tables) under spec 002's CDC rules:
-- BIGSERIAL PK, created_at/updated_at with the set_updated_at() trigger,
-- FKs ON UPDATE CASCADE ON DELETE RESTRICT, CHECKs for quantities, prices and
-- statuses. Stock flows supplier -> central warehouse (product_entries)
-- -> store (internal_distributions) -> client (sales).
-- Timestamps are TIMESTAMP WITHOUT TIME ZONE holding UTC (docs/data-model.md).

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END; $$ LANGUAGE plpgsql;

CREATE TABLE IF NOT EXISTS suppliers (
  id         BIGSERIAL PRIMARY KEY,
  name       VARCHAR(150) NOT NULL,
  cnpj       VARCHAR(18) UNIQUE NOT NULL,
  email      VARCHAR(150),
  phone      VARCHAR(20),
  city       VARCHAR(80),
  state      CHAR(2),
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER suppliers_updated_at
BEFORE UPDATE ON suppliers
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS stores (
  id         BIGSERIAL PRIMARY KEY,
  code       VARCHAR(20) UNIQUE NOT NULL,
  name       VARCHAR(120) NOT NULL,
  city       VARCHAR(80) NOT NULL,
  state      CHAR(2) NOT NULL,
  opened_at  DATE NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER stores_updated_at
BEFORE UPDATE ON stores
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS products (
  id         BIGSERIAL PRIMARY KEY,
  sku        VARCHAR(32) UNIQUE NOT NULL,
  name       VARCHAR(200) NOT NULL,
  category   VARCHAR(60) NOT NULL,
  unit       VARCHAR(10) NOT NULL DEFAULT 'un',
  price      NUMERIC(12,2) NOT NULL CHECK (price > 0),
  cost       NUMERIC(12,2) NOT NULL CHECK (cost > 0),
  active     BOOLEAN NOT NULL DEFAULT true,
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER products_updated_at
BEFORE UPDATE ON products
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS clients (
  id         BIGSERIAL PRIMARY KEY,
  name       VARCHAR(150) NOT NULL,
  cpf_cnpj   VARCHAR(18) UNIQUE NOT NULL,
  email      VARCHAR(150),
  phone      VARCHAR(20),
  address    VARCHAR(200),
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER clients_updated_at
BEFORE UPDATE ON clients
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Stock received from a supplier into the central warehouse.
CREATE TABLE IF NOT EXISTS product_entries (
  id             BIGSERIAL PRIMARY KEY,
  supplier_id    BIGINT NOT NULL REFERENCES suppliers(id)
                 ON UPDATE CASCADE ON DELETE RESTRICT,
  invoice_number VARCHAR(30) NOT NULL,
  entry_date     TIMESTAMP NOT NULL,
  status         VARCHAR(20) NOT NULL DEFAULT 'received'
                 CHECK (status IN ('pending','received','cancelled')),
  total_cost     NUMERIC(14,2) NOT NULL DEFAULT 0 CHECK (total_cost >= 0),
  created_at     TIMESTAMP NOT NULL DEFAULT now(),
  updated_at     TIMESTAMP NOT NULL DEFAULT now(),
  UNIQUE (supplier_id, invoice_number)
);
CREATE OR REPLACE TRIGGER product_entries_updated_at
BEFORE UPDATE ON product_entries
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS product_entry_items (
  id         BIGSERIAL PRIMARY KEY,
  entry_id   BIGINT NOT NULL REFERENCES product_entries(id)
             ON UPDATE CASCADE ON DELETE RESTRICT,
  product_id BIGINT NOT NULL REFERENCES products(id)
             ON UPDATE CASCADE ON DELETE RESTRICT,
  quantity   INTEGER NOT NULL CHECK (quantity > 0),
  unit_cost  NUMERIC(12,2) NOT NULL CHECK (unit_cost > 0),
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now(),
  UNIQUE (entry_id, product_id)
);
CREATE OR REPLACE TRIGGER product_entry_items_updated_at
BEFORE UPDATE ON product_entry_items
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Stock moved from the central warehouse to a store.
CREATE TABLE IF NOT EXISTS internal_distributions (
  id             BIGSERIAL PRIMARY KEY,
  store_id       BIGINT NOT NULL REFERENCES stores(id)
                 ON UPDATE CASCADE ON DELETE RESTRICT,
  distributed_at TIMESTAMP NOT NULL,
  status         VARCHAR(20) NOT NULL DEFAULT 'received'
                 CHECK (status IN ('pending','in_transit','received','cancelled')),
  created_at     TIMESTAMP NOT NULL DEFAULT now(),
  updated_at     TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER internal_distributions_updated_at
BEFORE UPDATE ON internal_distributions
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS internal_distribution_items (
  id              BIGSERIAL PRIMARY KEY,
  distribution_id BIGINT NOT NULL REFERENCES internal_distributions(id)
                  ON UPDATE CASCADE ON DELETE RESTRICT,
  product_id      BIGINT NOT NULL REFERENCES products(id)
                  ON UPDATE CASCADE ON DELETE RESTRICT,
  quantity        INTEGER NOT NULL CHECK (quantity > 0),
  created_at      TIMESTAMP NOT NULL DEFAULT now(),
  updated_at      TIMESTAMP NOT NULL DEFAULT now(),
  UNIQUE (distribution_id, product_id)
);
CREATE OR REPLACE TRIGGER internal_distribution_items_updated_at
BEFORE UPDATE ON internal_distribution_items
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS sales (
  id             BIGSERIAL PRIMARY KEY,
  store_id       BIGINT NOT NULL REFERENCES stores(id)
                 ON UPDATE CASCADE ON DELETE RESTRICT,
  client_id      BIGINT NOT NULL REFERENCES clients(id)
                 ON UPDATE CASCADE ON DELETE RESTRICT,
  sold_at        TIMESTAMP NOT NULL,
  status         VARCHAR(20) NOT NULL DEFAULT 'completed'
                 CHECK (status IN ('completed','cancelled','returned')),
  payment_method VARCHAR(20) NOT NULL
                 CHECK (payment_method IN ('cash','credit','debit','pix','boleto')),
  total          NUMERIC(14,2) NOT NULL DEFAULT 0 CHECK (total >= 0),
  created_at     TIMESTAMP NOT NULL DEFAULT now(),
  updated_at     TIMESTAMP NOT NULL DEFAULT now()
);
CREATE OR REPLACE TRIGGER sales_updated_at
BEFORE UPDATE ON sales
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE IF NOT EXISTS sale_items (
  id         BIGSERIAL PRIMARY KEY,
  sale_id    BIGINT NOT NULL REFERENCES sales(id)
             ON UPDATE CASCADE ON DELETE RESTRICT,
  product_id BIGINT NOT NULL REFERENCES products(id)
             ON UPDATE CASCADE ON DELETE RESTRICT,
  quantity   INTEGER NOT NULL CHECK (quantity > 0),
  unit_price NUMERIC(12,2) NOT NULL CHECK (unit_price > 0),
  subtotal   NUMERIC(14,2) NOT NULL CHECK (subtotal = quantity * unit_price),
  created_at TIMESTAMP NOT NULL DEFAULT now(),
  updated_at TIMESTAMP NOT NULL DEFAULT now(),
  UNIQUE (sale_id, product_id)
);
CREATE OR REPLACE TRIGGER sale_items_updated_at
BEFORE UPDATE ON sale_items
FOR EACH ROW EXECUTE FUNCTION set_updated_at();

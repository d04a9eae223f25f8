-- Agora metadata store, version 2: a counter bumped by every change to the catalog, so that
-- nodes can cache what they derive from it and notice changes made by other processes.
ALTER TABLE node ADD COLUMN catalog_version BIGINT NOT NULL DEFAULT 0;

/**
 * Issue 17, row-level change data:
 * - consumers.mode: `files` (the ICDC table of each batch, as before) or `rows` (each batch also
 *   writes a changelog table of its rows).
 * - batch_tables.row_changelog: that table's name, metadata location, snapshot and row count
 *   (JSON; null for a `files` consumer).
 */
export const sql = `
ALTER TABLE consumers ADD COLUMN mode TEXT NOT NULL DEFAULT 'files';
ALTER TABLE batch_tables ADD COLUMN row_changelog JSONB;
`;

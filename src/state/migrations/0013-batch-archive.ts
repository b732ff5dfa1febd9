/**
 * A closed batch's history in one row (issue 19; src/state/batch-archive.ts). Same SQL subset as
 * 0001 (see src/state/README.md).
 *
 * - batches.archive: once retention folds a closed batch's table summaries, its delivered
 *   trigger and its commit's watermark moves into it (deflated JSON), those rows are deleted;
 *   the repositories read them back from here. NULL for every batch not folded.
 */
export const sql = `
ALTER TABLE batches ADD COLUMN archive BYTEA;
`;

/**
 * The REST catalog (src/rest) finds an ICDC table's newest batch by the table's name: index it.
 * Same SQL subset as 0001 (see src/state/README.md).
 */
export const sql = `
CREATE INDEX batch_tables_by_icdc_table ON batch_tables (icdc_table);
`;

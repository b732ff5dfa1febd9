/**
 * Makes subscriptions due now. One being checked right now (claimed) gets a time after its
 * claimed one, which release() keeps: a wake during a check is not lost.
 */
export function wakeSql(where: string): string {
  return `UPDATE subscriptions SET next_check_at = clock_timestamp()
           WHERE ${where} AND enabled AND (next_check_at > now() OR claimed_by IS NOT NULL)`;
}

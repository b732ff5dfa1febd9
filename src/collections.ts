/** Items grouped by a key, each group in the items' order (Map.groupBy arrives in Node 21). */
export function groupBy<T, V = T>(items: Iterable<T>, key: (item: T) => string, value?: (item: T) => V): Map<string, V[]> {
  const m = new Map<string, V[]>();
  for (const it of items) {
    const k = key(it);
    let list = m.get(k);
    if (!list) m.set(k, (list = []));
    list.push(value ? value(it) : (it as unknown as V));
  }
  return m;
}

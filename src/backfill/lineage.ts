import { IpsError } from '../errors.js';

/**
 * Pipeline lineage: table → consumer (the consumer subscribes to the table) and consumer →
 * table (the consumer declares it writes the table). The graph must be acyclic: a consumer
 * that (through others) reads what it writes would re-trigger itself forever and a backfill
 * could never finish propagating.
 */
export interface LineageGraph {
  tables: string[];
  consumers: { name: string; inputs: string[]; outputs: string[] }[];
  /** Consumers in dependency order (every consumer after those that write its inputs). */
  order: string[];
}

export interface Edge {
  consumer: string;
  table: string;
}

function node(kind: 't' | 'c', name: string): string {
  return `${kind}:${name}`;
}

/** A cycle as a path of nodes (first = last), or null. */
function findCycle(adj: Map<string, string[]>): string[] | null {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 1);
    stack.push(n);
    for (const m of adj.get(n) ?? []) {
      const s = state.get(m);
      if (s === 1) return [...stack.slice(stack.indexOf(m)), m];
      if (s === undefined) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of [...adj.keys()].sort()) {
    if (state.has(n)) continue;
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

function describeCycle(path: string[]): string {
  return path.map((n) => n.slice(2)).join(' → ');
}

export function buildLineage(inputs: Edge[], outputs: Edge[]): LineageGraph {
  const adj = new Map<string, string[]>();
  const add = (a: string, b: string): void => {
    let l = adj.get(a);
    if (!l) adj.set(a, (l = []));
    if (!l.includes(b)) l.push(b);
    if (!adj.has(b)) adj.set(b, []);
  };
  for (const e of inputs) add(node('t', e.table), node('c', e.consumer));
  for (const e of outputs) add(node('c', e.consumer), node('t', e.table));
  const cycle = findCycle(adj);
  if (cycle) {
    throw new IpsError('PIPELINE_CYCLE',
      `the lineage would have a cycle: ${describeCycle(cycle)}; a consumer must not read (directly or through other consumers) a table it writes; drop that output or subscription`,
      { details: { cycle: cycle.map((n) => n.slice(2)) } });
  }
  const names = [...new Set([...inputs, ...outputs].map((e) => e.consumer))].sort();
  const consumers = names.map((name) => ({
    name,
    inputs: inputs.filter((e) => e.consumer === name).map((e) => e.table).sort(),
    outputs: outputs.filter((e) => e.consumer === name).map((e) => e.table).sort(),
  }));
  const tables = [...new Set([...inputs, ...outputs].map((e) => e.table))].sort();
  // Kahn's algorithm over consumers: c1 before c2 when c1 writes a table c2 reads.
  const writers = new Map<string, string[]>();
  for (const e of outputs) writers.set(e.table, [...(writers.get(e.table) ?? []), e.consumer]);
  const deps = new Map(consumers.map((c) => [c.name, new Set(c.inputs.flatMap((t) => writers.get(t) ?? []))] as const));
  const order: string[] = [];
  const done = new Set<string>();
  while (order.length < consumers.length) {
    const ready = consumers.filter((c) => !done.has(c.name) && [...deps.get(c.name)!].every((d) => done.has(d))).map((c) => c.name);
    if (ready.length === 0) break; // cannot happen: acyclic
    for (const r of ready) {
      order.push(r);
      done.add(r);
    }
  }
  return { tables, consumers, order };
}

/**
 * The consumers downstream of `consumer` (reading its outputs, and theirs, …) in lineage order,
 * each with the upstream table it reads and its depth (1: reads an output of `consumer`).
 */
export function downstreamOf(g: LineageGraph, consumer: string): { consumer: string; table: string; depth: number }[] {
  const byName = new Map(g.consumers.map((c) => [c.name, c] as const));
  const depth = new Map<string, { table: string; depth: number }>();
  let frontier = [consumer];
  for (let d = 1; frontier.length > 0; d++) {
    const next: string[] = [];
    for (const c of frontier) {
      for (const t of byName.get(c)?.outputs ?? []) {
        for (const r of g.consumers.filter((x) => x.inputs.includes(t))) {
          if (r.name === consumer || depth.has(r.name)) continue;
          depth.set(r.name, { table: t, depth: d });
          next.push(r.name);
        }
      }
    }
    frontier = next;
  }
  return g.order.filter((c) => depth.has(c)).map((c) => ({ consumer: c, ...depth.get(c)! }));
}

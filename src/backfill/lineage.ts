import { groupBy } from '../collections.js';
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

/**
 * A cycle as a path of nodes (first = last), or null: depth-first from each node in name order,
 * children in insertion order. Iterative (an explicit stack): a pipeline thousands of consumers
 * deep must not overflow the call stack.
 */
function findCycle(adj: Map<string, string[]>): string[] | null {
  const state = new Map<string, 1 | 2>();
  // The path being explored, with the index of the next child to visit of each node on it.
  const path: string[] = [];
  const next: number[] = [];
  const onPath = new Map<string, number>();
  for (const root of [...adj.keys()].sort()) {
    if (state.has(root)) continue;
    state.set(root, 1);
    onPath.set(root, 0);
    path.push(root);
    next.push(0);
    while (path.length > 0) {
      const top = path.length - 1;
      const n = path[top]!;
      const children = adj.get(n) ?? [];
      if (next[top]! < children.length) {
        const m = children[next[top]!++]!;
        const s = state.get(m);
        if (s === 1) return [...path.slice(onPath.get(m)!), m];
        if (s === undefined) {
          state.set(m, 1);
          onPath.set(m, path.length);
          path.push(m);
          next.push(0);
        }
        continue;
      }
      path.pop();
      next.pop();
      onPath.delete(n);
      state.set(n, 2);
    }
  }
  return null;
}

function describeCycle(path: string[]): string {
  return path.map((n) => n.slice(2)).join(' → ');
}

/**
 * The graph of these subscriptions (inputs) and declared outputs; PIPELINE_CYCLE when it loops.
 * Linear in the edges: it runs on every subscription and output change of a fleet of thousands.
 */
export function buildLineage(inputs: Edge[], outputs: Edge[]): LineageGraph {
  const adj = new Map<string, string[]>();
  const seen = new Set<string>();
  const add = (a: string, b: string) => {
    let l = adj.get(a);
    if (!l) adj.set(a, (l = []));
    const edge = `${a}\u0000${b}`;
    if (!seen.has(edge)) {
      seen.add(edge);
      l.push(b);
    }
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
  const inputsOf = groupBy(inputs, (e) => e.consumer, (e) => e.table);
  const outputsOf = groupBy(outputs, (e) => e.consumer, (e) => e.table);
  const names = [...new Set([...inputs, ...outputs].map((e) => e.consumer))].sort();
  const consumers = names.map((name) => ({
    name,
    inputs: (inputsOf.get(name) ?? []).slice().sort(),
    outputs: (outputsOf.get(name) ?? []).slice().sort(),
  }));
  const tables = [...new Set([...inputs, ...outputs].map((e) => e.table))].sort();
  // Kahn's algorithm over consumers, a level at a time (each level in name order): c1 before c2
  // when c1 writes a table c2 reads.
  const writers = groupBy(outputs, (e) => e.table, (e) => e.consumer);
  const waitingOn = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const c of consumers) {
    const deps = new Set(c.inputs.flatMap((t) => writers.get(t) ?? []));
    waitingOn.set(c.name, deps.size);
    for (const d of deps) {
      let l = dependents.get(d);
      if (!l) dependents.set(d, (l = []));
      l.push(c.name);
    }
  }
  const order: string[] = [];
  let level = consumers.filter((c) => waitingOn.get(c.name) === 0).map((c) => c.name);
  while (level.length > 0) {
    const nextLevel: string[] = [];
    for (const c of level) {
      order.push(c);
      for (const r of dependents.get(c) ?? []) {
        const left = waitingOn.get(r)! - 1;
        waitingOn.set(r, left);
        if (left === 0) nextLevel.push(r);
      }
    }
    level = nextLevel.sort();
  }
  return { tables, consumers, order };
}

/**
 * The consumers downstream of `consumer` (reading its outputs, and theirs, …) in lineage order,
 * each with the upstream table it reads and its depth (1: reads an output of `consumer`).
 */
export function downstreamOf(g: LineageGraph, consumer: string): { consumer: string; table: string; depth: number }[] {
  const byName = new Map(g.consumers.map((c) => [c.name, c] as const));
  const readers = groupBy(g.consumers.flatMap((c) => c.inputs.map((t) => ({ t, c }))), (r) => r.t, (r) => r.c);
  const depth = new Map<string, { table: string; depth: number }>();
  let frontier = [consumer];
  for (let d = 1; frontier.length > 0; d++) {
    const next: string[] = [];
    for (const c of frontier) {
      for (const t of byName.get(c)?.outputs ?? []) {
        for (const r of readers.get(t) ?? []) {
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
